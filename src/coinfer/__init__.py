"""coinfer: device-edge collaborative DNN inference.

The partitioning API loads on first use (``coinfer.lazy``), not on ``import coinfer``: a
device that runs a bundle's fronts in ONNX Runtime imports coinfer's runtime without PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coinfer.lazy import lazy_names

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
__getattr__ = lazy_names("coinfer", dict.fromkeys(set(__all__) - {"__version__"}, "coinfer.graph"))
