"""Recorded inputs read as ``run --inputs`` reads them: by argument name or position, rows of
the declared shape with or without its batch of 1, safe casts made and lossy ones refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from coinfer.device.input_files import file_inputs, recorded_frames
from coinfer.errors import BadFileError, BadValueError

EXAMPLES = (torch.zeros(1, 6, dtype=torch.int64), torch.zeros(1, 2, 3))
NAMES = ("tokens", "scale")


def test_safetensors_by_name_rows_without_their_batch(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    tokens = np.arange(24, dtype=np.int32).reshape(4, 6)  # int32 -> int64 is a safe cast
    scale = np.random.default_rng(0).normal(size=(4, 1, 2, 3)).astype(np.float32)
    save_file({"scale": scale, "tokens": tokens}, str(tmp_path / "in.safetensors"))
    frames = file_inputs(tmp_path / "in.safetensors", NAMES, EXAMPLES)
    assert recorded_frames(tmp_path / "in.safetensors") == 4 and len(frames) == 4
    for i, (t, s) in enumerate(frames):
        assert t.dtype == torch.int64 and t.shape == (1, 6) and t.tolist() == [tokens[i].tolist()]
        assert s.shape == (1, 2, 3) and torch.equal(s, torch.from_numpy(scale[i]))


def test_npz_by_position(tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", np.ones((3, 6), np.int64), np.ones((3, 2, 3), np.float32))
    frames = file_inputs(tmp_path / "in.npz", NAMES, EXAMPLES)
    assert len(frames) == 3 and frames[2][1].shape == (1, 2, 3)


@pytest.mark.parametrize(
    ("arrays", "said"),
    [
        ({"tokens": np.ones((3, 7), np.int64), "scale": np.ones((3, 2, 3), np.float32)}, "[1, 6]"),
        ({"tokens": np.ones((3, 6), np.int64), "scale": np.ones((3, 2, 3))}, "float64"),
        ({"tokens": np.ones((3, 6), np.uint64), "scale": np.ones((3, 2, 3), np.float32)}, "uint64"),
        ({"tokens": np.ones(3, np.int64), "scale": np.ones((3, 2, 3), np.float32)}, "shape [3]"),
        (
            {"tokens": np.ones((0, 6), np.int64), "scale": np.ones((0, 2, 3), np.float32)},
            "no frames",
        ),
        ({"tokens": np.ones((3, 6), np.int64)}, "the model takes tokens, scale"),
    ],
)
def test_what_does_not_fit_is_named(
    tmp_path: Path, arrays: dict[str, np.ndarray], said: str
) -> None:
    np.savez(tmp_path / "in.npz", **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    with pytest.raises(BadValueError, match=re.escape(said)):
        file_inputs(tmp_path / "in.npz", NAMES, EXAMPLES)


def test_other_suffixes_and_pickles_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", np.ones(3))
    with pytest.raises(BadValueError, match=r"give a \.npz or \.safetensors"):
        file_inputs(tmp_path / "in.npy", NAMES, EXAMPLES)
    np.savez(tmp_path / "obj.npz", tokens=np.array([{"a": 1}], dtype=object), scale=np.ones(1))
    with pytest.raises(BadFileError, match=r"not a readable \.npz file"):  # never unpickled
        file_inputs(tmp_path / "obj.npz", NAMES, EXAMPLES)
