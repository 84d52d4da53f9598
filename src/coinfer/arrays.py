"""The dtypes that travel, as numpy knows them: the wire, a bundle and a device without
PyTorch name a tensor's dtype by these names and hold it as a numpy array (bfloat16 through
ml_dtypes, which numpy lacks). ``coinfer.dtypes`` maps the same names onto torch's."""

from __future__ import annotations

from collections.abc import Sequence

import ml_dtypes
import numpy as np

NUMPY_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float64": np.dtype(np.float64),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "int16": np.dtype(np.int16),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
}
FLOATING = frozenset({"float32", "float16", "bfloat16", "float64"})
_NAMES = {dtype: name for name, dtype in NUMPY_DTYPES.items()}


def dtype_name(dtype: np.dtype) -> str | None:
    """The wire's name of a numpy dtype (None for one that cannot travel)."""
    return _NAMES.get(np.dtype(dtype))


def itemsize(name: str) -> int:
    return NUMPY_DTYPES[name].itemsize


def seeded_arrays(
    wanted: Sequence[tuple[tuple[int, ...], str]], rng: np.random.Generator
) -> list[np.ndarray]:
    """Arrays of the given shapes and dtype names: normal floats, integers and booleans in
    0..1 (valid indices for any embedding), as torch examples are drawn."""
    made = []
    for shape, name in wanted:
        if name in FLOATING:
            made.append(rng.standard_normal(shape).astype(NUMPY_DTYPES[name]))
        else:
            made.append(rng.integers(0, 2, shape).astype(NUMPY_DTYPES[name]))
    return made
