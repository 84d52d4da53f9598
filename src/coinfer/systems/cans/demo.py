"""`coinfer demo --system cans`: a cooperating pair (FedLinUCB-DW) beside a non-cooperating one,
four device processes against one federated edge over WLAN-class links
(``systems.cans.devices``), messages and bytes counted, and the fleet simulator's verdict on
the same world beside."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.device.records import summary
from coinfer.output import cell_text
from coinfer.report import legend_beside, log_axis, new_figure, save_figure
from coinfer.systems.base import DemoConfig, DemoHooks, DemoRun, DemoSpec
from coinfer.systems.cans.devices import DEVICES, WLAN, CansResult, run_cans
from coinfer.systems.cans.fleet import simulate_pairs
from coinfer.systems.cans.worlds import NETWORKS
from coinfer.systems.verdicts import Verdict, compare

EXPECT = "the cooperating pair's mean latency below the non-cooperating pair's"
PAIRS = (("cooperating", "coop"), ("alone", "alone"))
# a Jetson-Nano-class board running VGG16 (the fleet's nano-vgg16): offloading the raw frame
# pays on WLAN, and a lone learner that has not found that out pays the device's 2.2 s
DEFAULTS = {"model": "vgg16", "device": "edge-pc/3", "trace_scale": NETWORKS[WLAN].trace_scale}


@dataclass
class CansRun(DemoRun):
    cans: CansResult = field(default_factory=CansResult)
    simulated: dict[str, float] = field(default_factory=dict)  # pair → mean latency (s)

    def link_spec(self) -> dict[str, Any]:
        wlan = NETWORKS[WLAN]
        return {"trace": "hsdpa", "trace_scale": wlan.trace_scale, "rtt_s": wlan.rtt_s}

    def pairs(self) -> dict[str, float | None]:
        """Each pair's mean latency, the mean of its devices' means (a device on a faster
        stretch of link runs more frames: it must not outweigh its partner)."""
        means: dict[str, float | None] = {}
        for pair, prefix in PAIRS:
            devices = [
                float(np.mean([r.total_s for r in rs]))
                for n, rs in self.records.items()
                if n.startswith(prefix) and rs
            ]
            means[pair] = float(np.mean(devices)) if len(devices) == 2 else None
        return means

    def rows(self) -> list[dict[str, Any]]:
        policies = {name: policy for name, policy, _ in DEVICES}
        rows = []
        for name, records in self.records.items():
            fed = self.cans.federation.get(name) or {}
            done = summary(records)
            rows.append(
                {
                    "policy": name,
                    "learner": policies[name],
                    **{k: done[k] for k in ("frames", "offloaded", "fallbacks", "mean_latency_s")},
                    "messages": fed.get("messages", 0),
                    "bytes": fed.get("bytes", 0),
                    "error": self.cans.errors.get(name),
                }
            )
        return rows

    def agreement(self) -> bool | None:
        """Whether live and simulated pairs differ in the same direction."""
        live, sim = self.pairs(), self.simulated
        if live["cooperating"] is None or live["alone"] is None or len(sim) < 2:
            return None
        return (live["cooperating"] < live["alone"]) == (sim["cooperating"] < sim["alone"])

    def latencies(self, prefix: str) -> list[list[float]]:
        """Each device's frame latencies in the pair whose names start with ``prefix``."""
        return [[r.total_s for r in rs] for n, rs in self.records.items() if n.startswith(prefix)]

    def verdict(self) -> Verdict:
        coop, alone = self.latencies("coop"), self.latencies("alone")
        complete = all(len(pair) == 2 and all(pair) for pair in (coop, alone))
        claim = compare(
            "the cooperating pair's mean latency",
            coop if complete else [],
            "below",
            "the non-cooperating pair's",
            alone if complete else [],
        )
        return Verdict(EXPECT, [claim], self.why())

    def why(self) -> str:
        """Each device's frames, mean and fallbacks: which device decided the pairs' means."""
        parts = []
        for name, records in self.records.items():
            if not records:
                parts.append(f"{name} ran no frame ({self.cans.errors.get(name) or 'no error'})")
                continue
            done = summary(records)
            parts.append(
                f"{name} {done['frames']} frames at {done['mean_latency_s']:.3g} s "
                f"({done['offloaded']} offloaded, {done['fallbacks']} fallbacks)"
            )
        return "; ".join(parts)

    def details(self) -> list[str]:
        live, sim = self.pairs(), self.simulated
        return [
            f"pairs, mean latency: live cooperating {cell_text(live['cooperating'])} s, alone "
            f"{cell_text(live['alone'])} s; simulated (the same world, as many frames) "
            f"cooperating {cell_text(sim.get('cooperating'))} s, alone "
            f"{cell_text(sim.get('alone'))} s; agree in direction: {cell_text(self.agreement())}"
        ]

    def document(self) -> dict[str, Any]:
        return {
            "pairs_s": self.pairs(),
            "simulated_pairs_s": self.simulated,
            "simulation_agrees": self.agreement(),
            "groups": self.cans.groups,
        }

    def plot(self, path: Path) -> Path:
        """Every device's frames over time (a dot each: a device that ran few frames is still
        seen) with its moving mean, pairs in two colours, each pair's mean as a dashed line."""
        fig, ax = new_figure(width=8.0, height=3.6)
        colours = {"coop": "tab:blue", "alone": "tab:orange"}
        for name, records in self.records.items():
            if not records:
                continue
            colour = colours[name.split("-")[0]]
            style = "-" if name.endswith("1") else "--"
            times = np.array([r.started_s for r in records])
            values = np.array([r.total_s for r in records])
            ax.plot(times, values, "o", ms=2.5, alpha=0.45, color=colour)
            window = max(1, min(10, len(values) // 3))
            sums = np.cumsum(np.concatenate([[0.0], values]))
            first = np.maximum(np.arange(1, len(values) + 1) - window, 0)
            trailing = (sums[1:] - sums[first]) / (np.arange(1, len(values) + 1) - first)
            ax.plot(
                times,
                trailing,  # the mean of each frame and up to window - 1 before it
                lw=1.4,
                ls=style,
                color=colour,
                label=f"{name} ({len(values)} frames)",
            )
        pairs = self.pairs()
        for (pair, prefix), mean in zip(PAIRS, (pairs["cooperating"], pairs["alone"]), strict=True):
            if mean is not None:
                ax.axhline(
                    mean, color=colours[prefix], lw=0.8, ls=":", label=f"{pair}: {mean:.3g} s"
                )
        log_axis(ax)
        ax.set_xlabel("time since the device started (s)")
        ax.set_ylabel("frame latency (s): dots; lines, mean of the last 10")
        ax.set_title(
            f"{self.setting('model')} on {self.setting('device')} devices, WLAN links: "
            f"the pairs' means dotted",
            fontsize=9,
        )
        ax.grid(True, alpha=0.3)
        legend_beside(ax, fontsize=8)
        return save_figure(fig, path)


def run(config: DemoConfig, hooks: DemoHooks) -> CansRun:
    """The four devices live, then the same world simulated for as many frames."""
    result = CansRun(SPEC, config)
    model, device = result.setting("model"), result.setting("device")
    result.cans = run_cans(
        model,
        device,
        config.duration_s,
        config.max_frames,
        on_frame=hooks.frame,
        on_stage=hooks.stage,
    )
    result.records = result.cans.records
    frames = [len(r) for r in result.records.values() if r]
    if frames:
        result.simulated = simulate_pairs(
            model, device, int(np.mean(frames)), result.cans.starts, 0
        )
    return result


SPEC = DemoSpec(tuple(name for name, _, _ in DEVICES), DEFAULTS, EXPECT, run)
