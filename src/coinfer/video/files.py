"""Frames from any video file FFmpeg can decode, through PyAV (no external tools needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from coinfer.errors import BadFileError


def video_frames(path: str | Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """The file's frames as uint8 H x W x 3 RGB arrays, in order, at most ``limit`` of them."""
    path = Path(path)
    if not path.is_file():
        raise BadFileError(f"no video file {str(path)!r}: give the path of an mp4/avi/mkv file")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise BadFileError(f"{path}: not a video FFmpeg can read ({exc})") from exc
    with container:
        if not container.streams.video:
            raise BadFileError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        for count, frame in enumerate(container.decode(stream)):
            if limit is not None and count >= limit:
                return
            yield frame.to_ndarray(format="rgb24")


def write_video(path: str | Path, frames: Iterator[np.ndarray], fps: int = 10) -> int:
    """Encode RGB frames to ``path`` (H.264 in mp4, or whatever the suffix implies); returns
    how many were written. Lets users turn a synthetic scene into a file other tools play."""
    written = 0
    with av.open(str(path), mode="w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream(
                    "libx264" if str(path).endswith(".mp4") else "mpeg4", rate=fps
                )
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
            written += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return written
