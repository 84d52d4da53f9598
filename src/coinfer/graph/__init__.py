"""Where can a model be cut? Tracing, cut enumeration, splitting and per-cut features.

The records (``types``) import without torch; the partitioner loads on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coinfer.lazy import lazy_names

if TYPE_CHECKING:
    from coinfer.graph.errors import CutIndexError, PartitionError
    from coinfer.graph.partitioning import GRANULARITIES, Partitioning, partition
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
__getattr__ = lazy_names(
    "coinfer.graph",
    {
        "CutIndexError": "coinfer.graph.errors",
        "PartitionError": "coinfer.graph.errors",
        "GRANULARITIES": "coinfer.graph.partitioning",
        "Partitioning": "coinfer.graph.partitioning",
        "partition": "coinfer.graph.partitioning",
        "ANS_FEATURES": "coinfer.graph.types",
        "Cut": "coinfer.graph.types",
        "Op": "coinfer.graph.types",
        "TensorMeta": "coinfer.graph.types",
    },
)
