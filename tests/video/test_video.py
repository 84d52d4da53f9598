"""Synthetic scenes and SSIM key frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coinfer.errors import BadFileError
from coinfer.video import (
    KeyFrameDetector,
    SyntheticScene,
    key_frame_weights,
    video_frames,
    write_video,
)


def test_scenes_are_deterministic_and_shaped() -> None:
    a = list(SyntheticScene(seed=3, size=(64, 96)).frames(20))
    b = list(SyntheticScene(seed=3, size=(64, 96)).frames(20))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (64, 96, 3) and a[0].dtype == np.uint8
    assert not np.array_equal(a[0], a[1])  # objects move
    c = list(SyntheticScene(seed=4, size=(64, 96)).frames(20))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_key_frames_are_the_scene_cuts() -> None:
    scene = SyntheticScene(seed=1, mean_shot_frames=40)
    detector = KeyFrameDetector()
    keys = [i for i, frame in enumerate(scene.frames(300)) if detector.is_key(frame)]
    assert len(scene.cuts) >= 3
    assert keys == scene.cuts  # every cut found, and nothing else
    assert detector.key_rate == len(keys) / 300


def test_key_weights() -> None:
    frames = list(SyntheticScene(seed=1, mean_shot_frames=40).frames(50))
    detector = KeyFrameDetector()
    weights = [detector.weight(f) for f in frames]
    assert weights[0] == 0.2  # the first frame is not a key frame
    assert set(weights) == {0.2, 0.8}
    continuous = KeyFrameDetector(continuous=True)
    values = [continuous.weight(f) for f in frames]
    assert values[0] == 0.0 and all(0.0 <= v <= 1.0 for v in values)
    assert max(values) > 0.2 > min(values[1:])


def test_video_files_round_trip_and_key_frames(tmp_path: Path) -> None:
    scene = SyntheticScene(seed=1, mean_shot_frames=40)
    path = tmp_path / "scene.mp4"
    assert write_video(path, scene.frames(120)) == 120
    frames = list(video_frames(path))
    assert len(frames) == 120 and frames[0].shape == (224, 224, 3)
    weights, rate = key_frame_weights(frames)
    keys = [i for i, w in enumerate(weights) if w == 0.8]
    assert keys == scene.cuts  # the scene cuts survive H.264 and are found in the file
    assert rate == pytest.approx(len(keys) / 120)
    assert len(list(video_frames(path, limit=7))) == 7


def test_video_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BadFileError, match="no video file"):
        list(video_frames(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="not a video"):
        list(video_frames(junk))
