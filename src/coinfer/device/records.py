"""What a live device measured, frame by frame: the record of each frame, what a policy learns
from it, a run's summary and the per-frame JSON log."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.output import percentile
from coinfer.policies.types import Feedback


@dataclass(frozen=True)
class FrameRecord:
    frame: int
    cut: int
    offloaded: bool
    fallback: bool
    error: str | None
    device_s: float
    uplink_s: float
    edge_s: float
    downlink_s: float
    total_s: float
    bytes_sent: int
    started_s: float
    exit: int | None = None
    # a fallback: how long the device waited on the edge before finishing the frame itself
    # (its uplink_s, edge_s, downlink_s and bytes_sent are 0: nothing was delivered)
    waited_s: float = 0.0


def feedback_of(record: FrameRecord) -> Feedback:
    """What the policy learns: a fallback frame cost its wait on the edge before the device
    finished it, so an edge that is down or slow looks as expensive as it was."""
    if record.fallback:
        return Feedback(record.device_s, record.waited_s, 0.0, 0.0, 0)
    return Feedback(
        record.device_s, record.uplink_s, record.edge_s, record.downlink_s, record.bytes_sent
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summary(records: Sequence[FrameRecord]) -> dict[str, Any]:
    """Counts and latencies of a run (latencies null for a run of no frames: strict JSON)."""
    frames = len(records)
    totals = [r.total_s for r in records]
    return {
        "frames": frames,
        "offloaded": sum(r.offloaded for r in records),
        "fallbacks": sum(r.fallback for r in records),
        "mean_latency_s": _finite(float(np.mean(totals))) if frames else None,
        "p50_latency_s": percentile(totals, 50),
        "p95_latency_s": percentile(totals, 95),
        "p99_latency_s": percentile(totals, 99),
        "errors": sorted({r.error for r in records if r.error}),
        "cuts": {
            str(c): sum(r.cut == c for r in records) for c in sorted({r.cut for r in records})
        },
    }


def write_log(records: Sequence[FrameRecord], path: Path) -> None:
    """One strict-JSON line per frame (a non-finite number, which no frame should hold, is
    written as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for r in records:
            row = {k: _finite(v) if isinstance(v, float) else v for k, v in asdict(r).items()}
            fh.write(json.dumps(row, allow_nan=False) + "\n")
