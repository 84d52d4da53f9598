"""Recorded inputs from a file (``run --inputs FILE``): for a model that does not take images —
tokens, several arguments, any dtype — the real inputs a user saved with NumPy or safetensors.

The file holds one array per forward argument, named as the argument (or, from ``np.savez(f,
a, b)``, ``arr_0``, ``arr_1`` in the arguments' order); each array's first axis is the frames, a
row is one frame's input: the declared input shape itself, or that shape without its leading
batch of 1. Rows are checked against the shapes and dtypes the model was traced with (a dtype
is converted only where NumPy calls the cast safe: int32 to int64, never float64 to float32).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.arrays import NUMPY_DTYPES
from coinfer.errors import BadFileError, BadValueError

SUFFIXES = (".npz", ".safetensors")


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The named arrays in a ``.npz`` (never unpickled) or ``.safetensors`` file."""
    if not path.is_file():
        raise BadValueError(f"--inputs {str(path)!r}: no such file")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as held:
                return {name: held[name] for name in held.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise BadFileError(f"--inputs {path}: not a readable .npz file ({exc})") from None
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise BadValueError(
                f"--inputs {path}: reading .safetensors needs the safetensors package "
                f"(pip install safetensors)"
            ) from None
        try:
            return dict(load_file(str(path)))
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise BadFileError(f"--inputs {path}: not a safetensors file ({exc})") from None
    raise BadValueError(f"--inputs {path}: give a .npz or .safetensors file, not {path.suffix!r}")


def recorded_frames(path: Path) -> int:
    """How many frames the file records (its arrays' first axis; checked when read)."""
    arrays = read_arrays(path)
    return min((len(a) for a in arrays.values() if a.ndim), default=0)


def by_argument(
    arrays: Mapping[str, np.ndarray], names: Sequence[str], path: Path
) -> list[np.ndarray]:
    """The arrays in the forward's argument order: by argument name, else ``arr_0``..."""
    positional = [f"arr_{i}" for i in range(len(names))]
    for wanted in (list(names), positional):
        if set(arrays) == set(wanted):
            return [arrays[n] for n in wanted]
    raise BadValueError(
        f"--inputs {path}: holds {', '.join(sorted(arrays)) or 'no arrays'}, the model takes "
        f"{', '.join(names)}: save one array per argument under its name "
        f"(np.savez(FILE, {', '.join(f'{n}=...' for n in names)}))"
    )


def as_model_input(array: np.ndarray, example: Any) -> Any:
    """``array`` as the kind of input the model takes: itself for a bundle's device (numpy),
    a tensor sharing its memory for a torch model (torch is imported only then)."""
    if isinstance(example, np.ndarray):
        return array
    import torch

    return torch.from_numpy(array)


def _numpy_dtype(example: Any) -> np.dtype:
    if isinstance(example, np.ndarray):
        return example.dtype
    return NUMPY_DTYPES[str(example.dtype).removeprefix("torch.")]


def _rows(array: np.ndarray, example: Any, name: str, path: Path) -> Any:
    """``array`` as frames of ``example``'s shape and dtype, or a named error."""
    shape = tuple(example.shape)
    row = tuple(array.shape[1:])
    if array.ndim == 0 or (row != shape and not (shape[:1] == (1,) and row == shape[1:])):
        per_frame = " or ".join(str(list(s)) for s in dict.fromkeys([shape, shape[1:]]))
        raise BadValueError(
            f"--inputs {path}: {name!r} has shape {list(array.shape)}, but each of its rows must "
            f"be one frame's input {per_frame} (the first axis the frames; check --input-shape)"
        )
    wanted = _numpy_dtype(example)
    if array.dtype != wanted and not np.can_cast(array.dtype, wanted, "safe"):
        raise BadValueError(
            f"--inputs {path}: {name!r} is {array.dtype}, the model takes {wanted}: save it as "
            f"{wanted} (array.astype(np.{wanted})), or declare --input-shape ...:{array.dtype}"
        )
    frames = np.ascontiguousarray(array, dtype=wanted).reshape(len(array), *shape)
    return as_model_input(frames, example)


def file_inputs(path: Path, names: Sequence[str], examples: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Each frame's inputs (one tensor per forward argument) from ``path``."""
    arrays = by_argument(read_arrays(path), names, path)
    rows = [_rows(a, x, n, path) for a, x, n in zip(arrays, examples, names, strict=True)]
    counts = {len(r) for r in rows}
    if len(counts) != 1:
        sizes = ", ".join(f"{n} {len(r)}" for n, r in zip(names, rows, strict=True))
        raise BadValueError(
            f"--inputs {path}: every array needs as many frames (first axis); they have {sizes}"
        )
    if not counts or 0 in counts:
        raise BadValueError(f"--inputs {path}: no frames (the first axis is empty)")
    return [tuple(r[i] for r in rows) for i in range(len(rows[0]))]
