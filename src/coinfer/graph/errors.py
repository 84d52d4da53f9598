"""Errors raised while cutting a model, each naming the problem and the fix."""

from __future__ import annotations

from coinfer.errors import BadModelError


class PartitionError(BadModelError):
    """A model cannot be partitioned as asked: untraceable code, bad inputs or outputs."""


class CutIndexError(PartitionError, IndexError):
    """A cut index outside 0..P; an IndexError too, so ``except IndexError`` keeps working."""
