"""Processor sharing: the edge's compute and a shared uplink, split among concurrent jobs.

Each job has a remaining amount of work and a cap on its own rate; the resource's capacity is
split by water-filling: jobs whose cap is below the fair share get their cap, the rest share
what is left equally. With caps of 1 and a capacity of ``slots`` this is the multi-server
processor-sharing edge (each job runs at min(1, slots / n) of an uncontended edge); with caps at
each device's own link rate and a capacity in bit/s it is a shared uplink.
"""

from __future__ import annotations

import math

import numpy as np


def water_fill(caps: np.ndarray, capacity: float) -> np.ndarray:
    """Rates ≤ ``caps`` summing to min(Σ caps, ``capacity``), equal wherever caps allow."""
    if len(caps) == 0:
        return np.zeros(0)
    if caps.sum() <= capacity:
        return caps.copy()
    order = np.sort(caps)
    left = capacity
    level = math.inf
    for i, cap in enumerate(order):
        share = left / (len(order) - i)
        if cap >= share:
            level = share
            break
        left -= cap
    return np.minimum(caps, level)


class SharedResource:
    """Jobs indexed 0..``size``−1 (one per device at most), advanced in continuous time."""

    def __init__(self, size: int, capacity: float) -> None:
        if not capacity > 0:
            raise ValueError(f"a shared resource needs a positive capacity, got {capacity}")
        self.capacity = capacity
        self.remaining = np.zeros(size)
        self.caps = np.zeros(size)
        self.rates = np.zeros(size)
        self.active = np.zeros(size, dtype=bool)
        self.time_s = 0.0

    @property
    def jobs(self) -> int:
        return int(self.active.sum())

    def _share(self) -> None:
        self.rates[:] = 0.0
        if self.active.any():
            self.rates[self.active] = water_fill(self.caps[self.active], self.capacity)

    def advance(self, t: float) -> None:
        """Every job progresses at its rate from the last event to ``t``."""
        if t > self.time_s and self.active.any():
            self.remaining[self.active] -= self.rates[self.active] * (t - self.time_s)
        self.time_s = max(self.time_s, t)

    def add(self, job: int, work: float, cap: float, t: float) -> None:
        if self.active[job]:
            raise ValueError(f"job {job} is already running")
        self.advance(t)
        self.remaining[job] = work
        self.caps[job] = cap
        self.active[job] = True
        self._share()

    def rate_if_added(self, cap: float) -> float:
        """The rate a new job would get now (for the Oracle's truth)."""
        caps = np.append(self.caps[self.active], cap)
        return float(water_fill(caps, self.capacity)[-1])

    def next_completion(self) -> tuple[float, int]:
        """When the next job finishes if nothing arrives, and which (inf, -1 when idle)."""
        if not self.active.any():
            return math.inf, -1
        idx = np.flatnonzero(self.active)
        times = np.maximum(self.remaining[idx], 0.0) / self.rates[idx]
        k = int(np.argmin(times))
        return self.time_s + float(times[k]), int(idx[k])

    def remove(self, job: int) -> None:
        self.active[job] = False
        self.remaining[job] = 0.0
        self._share()
