"""coinfer: device-edge collaborative DNN inference."""

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
