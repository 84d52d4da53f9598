"""What coinfer writes for scripts and people: JSON every strict parser accepts (NaN and
±Infinity as null, never the ``NaN`` literals Python's json module emits by default; every
document carries a schema version) and table cells."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SCHEMA = "coinfer/1"  # the version of every JSON document coinfer prints or writes


def strict(value: Any) -> Any:
    """``value`` with every non-finite float as None (numpy scalars as Python numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return strict(value.item())
    return value


def dumps(doc: Any, indent: int | None = 2) -> str:
    return json.dumps(strict(doc), indent=indent, allow_nan=False)


def cell_text(value: Any) -> str:
    """A table cell: floats to 4 significant digits, nothing for None."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (numpy's ``inverted_cdf``): the smallest value with at least
    ``q`` % of the values at or below it, so p95 of a few frames is never below their mean
    unless most are; None for no values. The one rule for every p50/p95/p99 coinfer reports."""
    if not len(values):
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q, method="inverted_cdf"))


FLOPS_UNITS = (("FLOPs", 1.0), ("kFLOPs", 1e3), ("MFLOPs", 1e6), ("GFLOPs", 1e9))
BYTES_UNITS = (("B", 1.0), ("KB", 2.0**10), ("MB", 2.0**20), ("GB", 2.0**30))


def in_unit(values: Sequence[float], units: Sequence[tuple[str, float]]) -> tuple[str, list[str]]:
    """A column of ``values`` in the largest unit its largest value is at least 1 of (a tiny
    model's 312 FLOPs are not "0.0 MFLOPs"), one decimal (whole numbers in the base unit)."""
    top = max((abs(v) for v in values), default=0.0)
    name, factor = units[0]
    for candidate in units:
        if top >= candidate[1]:
            name, factor = candidate
    decimals = 0 if factor == units[0][1] else 1
    return name, [f"{v / factor:,.{decimals}f}" for v in values]
