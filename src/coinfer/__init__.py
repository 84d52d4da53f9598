"""coinfer: device-edge collaborative DNN inference.

The partitioning API loads on first use (PEP 562), not on ``import coinfer``: a device that
runs a bundle's fronts in ONNX Runtime imports coinfer's runtime without PyTorch installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coinfer.graph import (
        ANS_FEATURES,
        Cut,
        CutIndexError,
        Op,
        PartitionError,
        Partitioning,
        partition,
    )

__version__ = "0.1.0"

__all__ = [
    "ANS_FEATURES",
    "Cut",
    "CutIndexError",
    "Op",
    "PartitionError",
    "Partitioning",
    "__version__",
    "partition",
]
_FROM_GRAPH = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _FROM_GRAPH:
        return getattr(importlib.import_module("coinfer.graph"), name)
    raise AttributeError(f"module 'coinfer' has no attribute {name!r}")
