"""The ANS scenarios: a stationary world, a network change, an edge change, real 3G traces.

A scenario fixes the link and the edge's load over a run of ``frames`` frames. Step changes
happen at a third and two thirds of the run, so every scenario with a change also has a
return: the learner must leave the edge when it gets slow *and come back* when it recovers.

Default classes (the user may give any): the device is ``edge-pc/8`` — Edgent's desktop
regression slowed 8x, a Raspberry-Pi-4-class CPU (VGG16 5.9 s, tiny-YOLOv2 2.4 s per frame) —
and the edge is ``edge-pc`` (VGG16 0.74 s). At these speeds the scenarios' link levels put the
best cut on the edge at 10 Mbit/s and on the device at 0.5 Mbit/s, and an 8x edge slowdown
moves it to the device, for both models; on the HSDPA traces (0.2-8 Mbit/s) VGG16 crosses
between the two around 1 Mbit/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coinfer.data import trace_names, trace_path
from coinfer.errors import BadValueError
from coinfer.latency.link import ConstantBandwidth, Link, TraceBandwidth
from coinfer.latency.traces import concatenate_traces, step_bandwidth
from coinfer.sim.env import LoadSchedule, constant_load, step_load

SCENARIOS = ("stationary", "network-change", "edge-change", "hsdpa")
FAST_BPS = 10e6
SLOW_BPS = 0.5e6
SLOW_EDGE = 8.0
RTT_S = 0.02
STEP_INTERVAL_S = 1.0  # world time per frame in the step scenarios (camera clock)


@dataclass(frozen=True)
class World:
    """What a scenario sets: the link, the edge's load over time, and how the clock runs."""

    name: str
    link: Link
    edge_load: LoadSchedule
    clock: str
    frame_interval_s: float
    changes: tuple[int, ...]  # frames at which the world changes (empty for traces)
    description: str


def _thirds(frames: int) -> tuple[int, int]:
    return max(1, frames // 3), max(2, 2 * frames // 3)


def build_world(
    name: str,
    frames: int,
    trace: str | Path | None = None,
    trace_scale: float = 1.0,
    rtt_s: float = RTT_S,
) -> World:
    """The world of scenario ``name`` for a run of ``frames`` frames; ``trace`` (a shipped
    trace name or a file) replaces the link of ``hsdpa`` and names the ``trace`` scenario."""
    if frames < 3:
        raise BadValueError(f"a scenario needs at least 3 frames, got {frames}")
    if trace is not None and name not in ("trace", "hsdpa"):
        raise BadValueError(
            f"a trace file sets the link of the trace scenario; {name!r} has its own link: "
            "use --scenario trace with --trace FILE, or drop --trace"
        )
    if name in ("trace", "hsdpa") and trace is not None:
        link_trace = TraceBandwidth.from_file(trace_path(str(trace)), scale=trace_scale)
        return World(
            "trace",
            Link(link_trace, rtt_s),
            constant_load(),
            "back-to-back",
            0.0,
            (),
            f"trace {link_trace.name} x{trace_scale:g}, frames back to back",
        )
    first, second = _thirds(frames)
    t1, t2 = first * STEP_INTERVAL_S, second * STEP_INTERVAL_S
    fast, slow = f"{FAST_BPS / 1e6:g} Mbit/s", f"{SLOW_BPS / 1e6:g} Mbit/s"
    if name == "stationary":
        link = Link(ConstantBandwidth(FAST_BPS), rtt_s)
        return World(
            name, link, constant_load(), "camera", STEP_INTERVAL_S, (), f"{fast}, edge as profiled"
        )
    if name == "network-change":
        steps = [(0.0, FAST_BPS), (t1, SLOW_BPS), (t2, FAST_BPS)]
        text = f"{fast}, {slow} from frame {first}, {fast} again from frame {second}"
        return World(
            name,
            Link(step_bandwidth(steps), rtt_s),
            constant_load(),
            "camera",
            STEP_INTERVAL_S,
            (first, second),
            text,
        )
    if name == "edge-change":
        load = step_load([(0.0, 1.0), (t1, SLOW_EDGE), (t2, 1.0)])
        return World(
            name,
            Link(ConstantBandwidth(FAST_BPS), rtt_s),
            load,
            "camera",
            STEP_INTERVAL_S,
            (first, second),
            f"{fast}; the edge {SLOW_EDGE:g}x slower from frame {first}, "
            f"as profiled again from frame {second}",
        )
    if name == "hsdpa":
        names = [n for n in trace_names() if n.startswith("norway_")]
        traces = [TraceBandwidth.from_file(trace_path(n), scale=trace_scale) for n in names]
        link = Link(concatenate_traces(traces, "hsdpa-norway"), rtt_s)
        return World(
            name,
            link,
            constant_load(),
            "back-to-back",
            0.0,
            (),
            f"the {len(names)} shipped HSDPA traces one after another (x{trace_scale:g}), "
            "looping, frames back to back",
        )
    if name == "trace":
        raise BadValueError("the trace scenario needs a trace file: --trace FILE")
    raise BadValueError(
        f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}, or trace with --trace FILE"
    )
