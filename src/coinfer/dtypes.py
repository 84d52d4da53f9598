"""The tensor dtypes coinfer names: what may travel on the wire and what an input may be
declared as (``--input-shape 1,16:int64``) — one table for both."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from coinfer.arrays import NUMPY_DTYPES

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as the numpy array the wire sends (its memory where it can be: contiguous on the
    CPU already); bfloat16 as ml_dtypes' bfloat16."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(NUMPY_DTYPES["bfloat16"])
    return t.numpy()


def to_arrays(tensors: Iterable[torch.Tensor]) -> list[np.ndarray]:
    """What ``wire.tensors.encode_tensors`` takes, from torch tensors."""
    return [to_numpy(t) for t in tensors]


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """The tensor on ``array``'s memory (no copy)."""
    if array.dtype == NUMPY_DTYPES["bfloat16"]:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)
