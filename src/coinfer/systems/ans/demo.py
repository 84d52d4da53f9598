"""`coinfer demo --system ans` (the default): three devices side by side, each with its own edge
server on loopback (so none queues behind another) and its own shaped link replaying the same
real 3G trace from the same moment: one learns its cut with μLinUCB (link feature, γ = 0.99),
one always offloads everything, one never offloads. Halfway through every edge turns
``slowdown`` times slower (the server's run-time CONTROL, over the wire as an operator would),
so the best cut moves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.data import trace_path
from coinfer.device.inputs import live_frames
from coinfer.device.requests import set_edge_slowdown
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.systems.base import DemoConfig, DemoHooks, DemoRun, DemoSpec
from coinfer.systems.live_demo import (
    demo_setup,
    edge_servers,
    endpoint,
    frame_plot,
    frame_rows,
    host_load,
    side_by_side,
)
from coinfer.systems.verdicts import Claim, Verdict, compare

LEARNER = "mulinucb-link"
DEVICES = (LEARNER, "edge-only", "device-only")
EXPECT = (
    "μLinUCB below device-only before the edge slows down (it offloads), and below edge-only "
    "after (it moves its cut)"
)


@dataclass
class AnsRun(DemoRun):
    slowdown_at_s: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        rows = frame_rows(self)
        for row in rows:
            before, after = self.phase(row["policy"], False), self.phase(row["policy"], True)
            row["before_slowdown_s"] = float(np.mean(before)) if before else None
            row["after_slowdown_s"] = float(np.mean(after)) if after else None
        return rows

    def phase(self, name: str, after: bool) -> list[float]:
        """``name``'s frame latencies before (or after) the slowdown: what the table averages."""
        at = self.slowdown_at_s
        return [r.total_s for r in self.records[name] if (r.started_s >= at) == after]

    def verdict(self) -> Verdict:
        """The learner's story is its move: the whole run's mean is mostly the frames before
        the slowdown (they are the fast ones), where offloading and learning are one."""
        claims = [
            compare(
                "μLinUCB before the slowdown",
                self.phase(LEARNER, False),
                "below",
                "device-only",
                self.phase("device-only", False),
            ),
            compare(
                "μLinUCB after the slowdown",
                self.phase(LEARNER, True),
                "below",
                "edge-only",
                self.phase("edge-only", True),
            ),
        ]
        return Verdict(EXPECT, claims, self.why(claims))

    def why(self, claims: list[Claim]) -> str:
        """What the learner's cuts did in the phase whose claim did not hold (the lower panel)."""
        parts = []
        for claim, after in zip(claims, (False, True), strict=True):
            records = [
                r for r in self.records[LEARNER] if (r.started_s >= self.slowdown_at_s) == after
            ]
            if claim.outcome == "held" or not records:
                continue
            raw = sum(r.cut == 0 for r in records) / len(records)
            phase = "after" if after else "before"
            parts.append(
                f"{phase} the slowdown μLinUCB sent the raw input (cut 0, as edge-only does) in "
                f"{raw:.0%} of its {len(records)} frames and ended at cut {records[-1].cut}"
            )
        if parts and claims[1].outcome != "held":
            parts.append("a longer --duration gives it more frames to find the new cut")
        return "; ".join(parts) or "no frames in a phase: give a longer --duration"

    def plot(self, path: Path) -> Path:
        """The slowdown marked: the learner's move is visible."""

        def mark(top: Any, bottom: Any) -> None:
            for ax in (top, bottom):
                ax.axvline(self.slowdown_at_s, color="grey", ls="--", lw=0.8)
            top.annotate(
                f"edge {self.config.slowdown:g}x slower",
                (self.slowdown_at_s, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, -12),
                textcoords="offset points",
                fontsize=8,
            )

        return frame_plot(self, path, lambda r: r.cut, "cut chosen", mark)


def run(config: DemoConfig, hooks: DemoHooks) -> AnsRun:
    result = AnsRun(SPEC, config, slowdown_at_s=config.duration_s / 2)
    model, scale = result.setting("model"), result.setting("trace_scale")
    setup = demo_setup(model, result.setting("device"))
    link = Link(TraceBandwidth.from_file(trace_path(config.trace), scale=scale), config.rtt_s)
    with edge_servers(model, len(DEVICES)) as servers:
        loaded = host_load(setup)
        if loaded is not None:
            result.warnings.append(loaded)

        async def slow_down() -> None:
            await asyncio.sleep(result.slowdown_at_s)
            for server in servers:  # over the wire, as an operator would
                await set_edge_slowdown(endpoint(server), config.slowdown)

        data = live_frames(setup.model, config.max_frames)
        knowledge = setup.knowledge("live", link)
        side_by_side(result, setup, servers, link, data, knowledge, hooks, slow_down)
    return result


SPEC = DemoSpec(DEVICES, {"model": "alexnet", "device": "host/30", "trace_scale": 8.0}, EXPECT, run)
