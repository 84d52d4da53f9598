"""What an edge server counts: connections, requests, errors by code, events (idle closes,
timeouts, evictions, refusals, loop errors, trims) and the edge and handling times' percentiles
— what a STATS request returns and ``coinfer serve`` prints on exit."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

from coinfer.output import percentile

WINDOW = 10_000  # the times kept for the percentiles


def _window() -> collections.deque[float]:
    return collections.deque(maxlen=WINDOW)


@dataclass
class ServerStats:
    started: float = field(default_factory=time.monotonic)
    connections: int = 0
    requests: int = 0
    batches: int = 0
    batched_requests: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    # idle_closed, write_timeouts, read_timeouts, evicted, refused, loop_errors, trims
    events: collections.Counter[str] = field(default_factory=collections.Counter)
    edge_s: collections.deque[float] = field(default_factory=_window)
    handle_s: collections.deque[float] = field(default_factory=_window)

    def summary(self) -> dict[str, Any]:
        def pct(values: collections.deque[float]) -> dict[str, float]:
            if not values:
                return {}
            ordered = list(values)
            return {f"p{q}": percentile(ordered, q) or 0.0 for q in (50, 95, 99)}

        return {
            "uptime_s": time.monotonic() - self.started,
            "connections": self.connections,
            "requests": self.requests,
            "errors": dict(self.errors),
            "events": dict(self.events),
            "batches": self.batches,
            "batched_requests": self.batched_requests,
            "edge_s": pct(self.edge_s),
            "handle_s": pct(self.handle_s),
        }
