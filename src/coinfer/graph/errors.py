"""Errors raised while cutting a model, each naming the problem and the fix."""

from __future__ import annotations


class PartitionError(ValueError):
    """A model cannot be partitioned as asked: untraceable code, bad inputs or outputs."""


class CutIndexError(PartitionError, IndexError):
    """A cut index outside 0..P; an IndexError too, so ``except IndexError`` keeps working."""
