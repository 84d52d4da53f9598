"""`coinfer demo --system edgent`: BranchyNet AlexNet (its trained weights) on an emulated
Raspberry Pi 3, the held-out digits as frames, a 3G trace at half speed and a 100 ms deadline:
dynamic Edgent against static Edgent (planned for the link at the start) and device-only at
exit 1, each on its own edge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.data import trace_path
from coinfer.device.inputs import live_frames
from coinfer.errors import BadValueError
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.systems.base import DemoConfig, DemoHooks, DemoRun, DemoSpec, Verdict
from coinfer.systems.edgent.live import link_history_bps
from coinfer.systems.live_demo import (
    demo_setup,
    edge_servers,
    frame_plot,
    frame_rows,
    host_load,
    side_by_side,
)

DEVICES = ("edgent-dynamic", "edgent", "device-only")
EXPECT = "dynamic Edgent meets the deadline more often than static Edgent"
MODEL = "branchy_alexnet"


@dataclass
class EdgentRun(DemoRun):
    def rows(self) -> list[dict[str, Any]]:
        rows = frame_rows(self)
        req = self.config.latency_req_s
        for row in rows:
            known = [c for c in self.correct.get(row["policy"], []) if c is not None]
            row["accuracy"] = float(np.mean(known)) if known else None
            hits = [r.total_s <= req for r in self.records[row["policy"]]]
            row["deadline_hit_rate"] = float(np.mean(hits)) if hits else None
        return rows

    def verdict(self) -> Verdict:
        rows = {r["policy"]: r for r in self.rows()}
        dyn, static = rows["edgent-dynamic"], rows["edgent"]
        held = (dyn["deadline_hit_rate"] or 0.0) > (static["deadline_hit_rate"] or 0.0)
        return Verdict(EXPECT, held)

    def plot(self, path: Path) -> Path:
        """The deadline marked; below, the exit each chose."""
        req = self.config.latency_req_s

        def mark(top: Any, bottom: Any) -> None:
            top.axhline(req, color="red", ls="--", lw=0.8, label=f"deadline {1e3 * req:g} ms")

        return frame_plot(
            self, path, lambda r: r.exit if r.exit is not None else r.cut, "exit chosen", mark
        )


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
        side_by_side(result, setup, servers, link, data, knowledge, hooks)
    return result


SPEC = DemoSpec(DEVICES, {"model": MODEL, "device": "rpi3", "trace_scale": 0.5}, EXPECT, run, check)
