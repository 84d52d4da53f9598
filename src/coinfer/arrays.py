"""The dtypes that travel, as numpy knows them: the wire, a bundle and a device without
PyTorch name a tensor's dtype by these names and hold it as a numpy array (bfloat16 through
ml_dtypes, which numpy lacks). ``coinfer.dtypes`` maps the same names onto torch's."""

from __future__ import annotations

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
