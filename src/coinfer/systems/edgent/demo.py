"""`coinfer demo --system edgent`: BranchyNet AlexNet (its trained weights) on an emulated
Raspberry Pi 3, the held-out digits as frames, a 3G trace at half speed and a 100 ms deadline:
dynamic Edgent against static Edgent (planned for the link at the start) and device-only at
exit 1, each on its own edge."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.data import trace_path
from coinfer.device.inputs import live_frames
from coinfer.device.records import FrameRecord
from coinfer.errors import BadValueError
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.policies.edgent import EdgentDynamic
from coinfer.systems.base import DemoConfig, DemoHooks, DemoRun, DemoSpec
from coinfer.systems.edgent.live import link_history_bps
from coinfer.systems.live_demo import (
    demo_setup,
    edge_servers,
    frame_plot,
    frame_rows,
    host_load,
    side_by_side,
)
from coinfer.systems.verdicts import Verdict, compare

DEVICES = ("edgent-dynamic", "edgent", "device-only")
EXPECT = "dynamic Edgent meets the deadline more often than static Edgent"
MODEL = "branchy_alexnet"


@dataclass
class EdgentRun(DemoRun):
    final_exit: int = 0  # the whole model's exit: what device-only (which has none) runs

    def rows(self) -> list[dict[str, Any]]:
        rows = frame_rows(self)
        for row in rows:
            known = [c for c in self.correct.get(row["policy"], []) if c is not None]
            row["accuracy"] = float(np.mean(known)) if known else None
            hits = self.hits(row["policy"])
            row["deadline_hit_rate"] = float(np.mean(hits)) if hits else None
        return rows

    def hits(self, name: str) -> list[float]:
        """1 for each of ``name``'s frames that met the deadline, else 0 (the table's rate)."""
        req = self.config.latency_req_s
        return [float(r.total_s <= req) for r in self.records[name]]

    def exit_of(self, record: FrameRecord) -> int:
        return record.exit if record.exit is not None else self.final_exit

    def verdict(self) -> Verdict:
        claim = compare(
            "dynamic Edgent's deadline hit rate",
            self.hits("edgent-dynamic"),
            "above",
            "static Edgent's",
            self.hits("edgent"),
            relative=False,
            unit="",
        )
        return Verdict(EXPECT, [claim], self.misses())

    def misses(self) -> str:
        """When each Edgent missed the deadline (what the upper panel shows against its line)."""
        parts = []
        for name in ("edgent-dynamic", "edgent"):
            late = [
                r.started_s
                for r in self.records.get(name, [])
                if r.total_s > self.config.latency_req_s
            ]
            span = f", from {min(late):.0f} s to {max(late):.0f} s" if late else ""
            parts.append(
                f"{name} missed {len(late)} of {len(self.records.get(name, []))} frames{span}"
            )
        return "; ".join(parts)

    def details(self) -> list[str]:
        """What each Edgent chose and why dynamic Edgent chose it (its bandwidth states)."""
        lines = []
        for name in ("edgent-dynamic", "edgent"):
            records = self.records.get(name, [])
            if not records:
                continue
            chosen = Counter((self.exit_of(r), r.offloaded) for r in records)
            (exit, offloaded), count = chosen.most_common(1)[0]
            where = "on the edge" if offloaded else "on the device"
            lines.append(f"{name}: exit {exit} {where} in {count / len(records):.0%} of its frames")
        dynamic = self.policies.get("edgent-dynamic")
        if isinstance(dynamic, EdgentDynamic):
            lines.append(states_line(dynamic, self.config.latency_req_s))
        return lines

    def plot(self, path: Path) -> Path:
        """The deadline marked; below, the exit each chose (device-only: the whole model's)."""
        req = self.config.latency_req_s

        def mark(top: Any, bottom: Any) -> None:
            top.axhline(req, color="red", ls="--", lw=0.8, label=f"deadline {1e3 * req:g} ms")

        return frame_plot(
            self, path, self.exit_of, f"exit chosen ({self.final_exit}: the whole model)", mark
        )


def states_line(policy: EdgentDynamic, latency_req_s: float) -> str:
    """Dynamic Edgent's map in a line: each bandwidth state's range, the rate it is planned for
    (its bin's 10th percentile: conservative) and its plan, and what the most accurate exit
    would take at the top state's rate."""
    bounds = [0.0, *policy.edges, policy.ceiling_bps]
    states = []
    for state, choice in sorted(policy.config_map.items()):
        if state == policy.above:
            span, level = f"above {mbps(policy.ceiling_bps)}", None
        else:
            span, level = f"{mbps(bounds[state])}-{mbps(bounds[state + 1])}", policy.levels[state]
        where = "offloaded" if choice.cost.bytes_sent else "on the device"
        planned = f" planned for {mbps(level)}" if level is not None else ""
        states.append(f"{span} Mbit/s{planned}: exit {choice.exit} {where}")
    deepest = max(policy.planner.exits, key=lambda p: (p.accuracy, p.exit))
    top = max(level for level in policy.levels if not math.isnan(level))
    best = min(policy.planner.costs(deepest, top), key=lambda c: c.total_s)
    return (
        f"dynamic Edgent's bandwidth states (from the traces it was given): {'; '.join(states)}. "
        f"At {mbps(top)} Mbit/s exit {deepest.exit} is predicted {1e3 * best.total_s:.0f} ms "
        f"against the {1e3 * latency_req_s:g} ms deadline"
    )


def mbps(bps: float) -> str:
    return f"{bps / 1e6:.2f}"


def check(config: DemoConfig) -> None:
    if config.model not in (None, MODEL):
        raise BadValueError(f"--system edgent needs a multi-exit model: {MODEL}")


def run(config: DemoConfig, hooks: DemoHooks) -> EdgentRun:
    result = EdgentRun(SPEC, config)
    model, scale = result.setting("model"), result.setting("trace_scale")
    setup = demo_setup(model, result.setting("device"))
    link = Link(TraceBandwidth.from_file(trace_path(config.trace), scale=scale), config.rtt_s)
    with edge_servers(model, len(DEVICES)) as servers:
        loaded = host_load(setup)
        if loaded is not None:
            result.warnings.append(loaded)
        data = live_frames(setup.model, config.max_frames)
        history = link_history_bps(config.trace, scale, link)
        knowledge = setup.knowledge(
            "live", link, latency_req_s=config.latency_req_s, link_history_bps=history
        )
        result.final_exit = max(p.exit for p in setup.model.exits)
        side_by_side(result, setup, servers, link, data, knowledge, hooks)
    return result


SPEC = DemoSpec(DEVICES, {"model": MODEL, "device": "rpi3", "trace_scale": 0.5}, EXPECT, run, check)
