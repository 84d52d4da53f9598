"""`coinfer demo --system stopping`: the MLP layer by layer on an emulated Raspberry Pi 3 over a
Rayleigh-fading uplink (10 dB): the optimal stopping rule against the best fixed split,
edge-only and device-only, one after the other on the same channel draws and one set of
measured per-layer times; each policy's mean measured cost beside its rule's analytic cost (on
the times measured before, and during, its run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.device.stage_env import Calibration, TaskRecord
from coinfer.report import new_figure, save_figure
from coinfer.systems.base import DemoConfig, DemoHooks, DemoRun, DemoSpec, Verdict
from coinfer.systems.live_demo import demo_setup, edge_servers, endpoint, host_load
from coinfer.systems.stopping.live import run_stages

DEVICES = ("stopping", "fixed-split", "edge-only", "device-only")
EXPECT = "the optimal rule costs least, and its measured cost is within 5% of its analytic cost"
TASKS_PER_SECOND = 4  # device-only takes ~0.18 s a task: the duration's worth of tasks
SHOWN = (
    "policy",
    "tasks",
    "mean_cost",
    "ci95",
    "analytic_cost",
    "analytic_cost_as_run",
    "fallbacks",
)


@dataclass
class StoppingRun(DemoRun):
    stage_rows: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return self.stage_rows

    def verdict(self) -> Verdict:
        rows = {r["policy"]: r for r in self.stage_rows}
        best = rows["stopping"]
        held = all(best["mean_cost"] <= r["mean_cost"] for r in rows.values()) and (
            abs(best["mean_cost"] / best["analytic_cost"] - 1) <= 0.05
        )
        return Verdict(EXPECT, held)

    def plot(self, path: Path) -> Path:
        fig, ax = new_figure(width=7.0)
        names = [r["policy"] for r in self.stage_rows]
        xs = np.arange(len(names))
        ax.bar(
            xs - 0.2,
            [r["mean_cost"] for r in self.stage_rows],
            0.4,
            yerr=[r["ci95"] or 0.0 for r in self.stage_rows],
            label="measured (95% CI)",
        )
        ax.bar(xs + 0.2, [r["analytic_cost"] for r in self.stage_rows], 0.4, label="analytic")
        ax.set_xticks(xs, names)
        ax.set_ylabel("mean cost per task (J + w·s)")
        ax.set_title(f"{self.setting('model')} over Rayleigh fading, 10 dB, w = 1")
        ax.legend(fontsize=8)
        return save_figure(fig, path)


def run(config: DemoConfig, hooks: DemoHooks) -> StoppingRun:
    """The rules one after the other, each a share of the duration's tasks, on one edge."""
    result = StoppingRun(SPEC, config)
    model = result.setting("model")
    setup = demo_setup(model, result.setting("device"))
    tasks = max(20, int(config.duration_s * TASKS_PER_SECOND))
    with edge_servers(model, 1) as (server,):
        loaded = host_load(setup)
        if loaded is not None:
            result.warnings.append(loaded)
        calibration: Calibration | None = None  # measured once: every rule on the same times
        for name in DEVICES:

            def report(record: TaskRecord, name: str = name) -> None:
                hooks.task(name, record.task + 1, tasks)

            staged = run_stages(
                setup, name, tasks, endpoint(server), calibration=calibration, on_task=report
            )
            calibration = staged.calibration
            result.stage_rows.append({k: staged.summary[k] for k in SHOWN})
    return result


SPEC = DemoSpec(DEVICES, {"model": "mlp", "device": "rpi3", "trace_scale": 1.0}, EXPECT, run)
