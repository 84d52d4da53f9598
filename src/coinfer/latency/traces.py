"""Bandwidth processes for the simulator: steps and Markov-modulated links, as traces.

Every process becomes a ``TraceBandwidth`` (piecewise-constant throughput), so the simulator
reads any of them, and real HSDPA traces, the same way: at the moment each transfer happens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coinfer.data import trace_names, trace_path
from coinfer.errors import BadValueError
from coinfer.latency.link import TraceBandwidth


def step_bandwidth(steps: Sequence[tuple[float, float]], name: str = "steps") -> TraceBandwidth:
    """Throughput ``bps`` from each ``(time_s, bps)`` on; the last value holds (no loop)."""
    if not steps or steps[0][0] != 0:
        raise BadValueError("a step schedule starts at time 0: [(0, bps), (t1, bps1), ...]")
    return TraceBandwidth(tuple(t for t, _ in steps), tuple(b for _, b in steps), name, loop=False)


def markov_bandwidth(
    states_bps: Sequence[float],
    transition: Sequence[Sequence[float]],
    dwell_s: float = 1.0,
    horizon_s: float = 3600.0,
    seed: int = 0,
) -> TraceBandwidth:
    """A Markov-modulated link: every ``dwell_s`` the state moves by ``transition``'s row."""
    p = np.asarray(transition, dtype=float)
    n = len(states_bps)
    if p.shape != (n, n) or not np.allclose(p.sum(axis=1), 1.0) or (p < 0).any():
        raise BadValueError("transition must be a square row-stochastic matrix, one row per state")
    rng = np.random.default_rng(seed)
    steps = int(np.ceil(horizon_s / dwell_s))
    state = 0
    values = []
    for _ in range(steps):
        values.append(float(states_bps[state]))
        state = int(rng.choice(n, p=p[state]))
    times = tuple(i * dwell_s for i in range(steps))
    return TraceBandwidth(times, tuple(values), name="markov", loop=True)


def concatenate_traces(
    traces: Sequence[TraceBandwidth], name: str = "concatenated"
) -> TraceBandwidth:
    """One looping trace that plays ``traces`` one after the other (each for its own period)."""
    if not traces:
        raise BadValueError("give at least one trace to concatenate")
    times: list[float] = []
    values: list[float] = []
    offset = 0.0
    for trace in traces:
        times += [offset + t for t in trace.times]
        values += list(trace.bps)
        offset += trace.period
    return TraceBandwidth(tuple(times), tuple(values), name, loop=True)


def shifted_trace(
    trace: TraceBandwidth, offset_s: float, name: str | None = None
) -> TraceBandwidth:
    """The looping ``trace`` as heard from ``offset_s`` into it: time 0 of the result is
    ``offset_s`` of the original (so devices on one trace file see different stretches)."""
    if not trace.loop:
        raise BadValueError("only a looping trace can be shifted")
    period = trace.period
    offset = offset_s % period
    ends = [*trace.times[1:], period]
    pieces = []
    for start, end, bps in zip(trace.times, ends, trace.bps, strict=True):
        for lo, hi in (
            (start - offset, end - offset),
            (start - offset + period, end - offset + period),
        ):
            lo, hi = max(lo, 0.0), min(hi, period)
            if hi > lo:
                pieces.append((lo, bps))
    pieces.sort()
    times, rates = tuple(t for t, _ in pieces), tuple(b for _, b in pieces)
    label = name or f"{trace.name}+{offset:g}s"
    return TraceBandwidth(times, rates, label, loop=True, period_s=period)


def shipped_history_bps(exclude: str | None, scale: float = 1.0) -> list[float]:
    """Every throughput sample of the shipped traces but ``exclude`` (at ``scale``): what a
    device has seen before a run over ``exclude`` (Edgent's bandwidth states)."""
    return [
        b
        for other in trace_names()
        if other != exclude
        for b in TraceBandwidth.from_file(trace_path(other), scale=scale).bps
    ]
