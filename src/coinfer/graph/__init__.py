"""Where can a model be cut? Tracing, cut enumeration, splitting and per-cut features."""

from coinfer.graph.errors import CutIndexError, PartitionError
from coinfer.graph.partition import GRANULARITIES, Partitioning, partition
from coinfer.graph.types import ANS_FEATURES, Cut, Op, TensorMeta

__all__ = [
    "ANS_FEATURES",
    "GRANULARITIES",
    "Cut",
    "CutIndexError",
    "Op",
    "PartitionError",
    "Partitioning",
    "TensorMeta",
    "partition",
]
