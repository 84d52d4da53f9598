"""Autodidactic Neurosurgeon's experiment (Zhang, Chen, Xu, WWW 2021): learning the cut online.

VGG16 and tiny-YOLOv2 in four worlds — stationary, a network change, an edge change, real 3G
traces — with every policy on the same frames (a synthetic video's SSIM key frames), link,
edge and noise: mean delay over all frames and over key frames, regret against the Oracle, the
share of frames at the Oracle's cut, and the mean delay after the first change. The best fixed
cut in hindsight sits beside the Oracle (DESIGN §1): what no learner blind to the link can beat.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from coinfer.defaults import DISCOUNT, EDGE_CLASS, SIM_DEVICE_CLASS
from coinfer.policies.bandits import TunedMuLinUCB
from coinfer.report import ExperimentResult, markdown_table
from coinfer.sim.compare import POLICIES, compare
from coinfer.sim.scoring import run_policy
from coinfer.systems.ans.scenarios import SCENARIOS, build_world
from coinfer.systems.ans.simulate import (
    NOISE,
    Simulation,
    environments,
    plot_simulation,
    scene_key_weights,
    simulate,
)
from coinfer.systems.base import ExperimentContext

MODELS = ("vgg16", "tiny_yolov2")
UNITS_S = (1e-3, 1e-2, 1e-1, 1.0)
DISCOUNTS = (1.0, 0.995, 0.99, 0.98)
Progress = Callable[[str, int, int], None]  # (what, done, total)


def sensitivity(
    frames: int, key_weights: tuple[list[float], float], progress: Progress | None = None
) -> list[dict[str, Any]]:
    """coinfer's μLinUCB (``mulinucb-scaled``'s numerics) mean delay over the Oracle's for each
    delay unit and discount, every model and scenario: how much the two choices beyond the
    authors' algorithm matter."""
    rows = []
    combos = list(itertools.product(MODELS, SCENARIOS))
    for done, (model, scenario) in enumerate(combos):
        new_env = environments(model, build_world(scenario, frames), key_weights[0])
        oracle = compare(["oracle"], new_env, frames)["oracle"].mean_delay_s
        for unit, gamma in itertools.product(UNITS_S, DISCOUNTS):
            env = new_env()
            front = [c.device_s for c in env.costs()]
            policy = TunedMuLinUCB(env.cuts, front, discount=gamma, delay_unit_s=unit)
            run = run_policy(env, policy, frames)
            rows.append(
                {
                    "model": model,
                    "scenario": scenario,
                    "delay_unit_s": unit,
                    "discount": gamma,
                    "vs_oracle": run.mean_delay_s / oracle,
                }
            )
        if progress is not None:
            progress("sensitivity", done + 1, len(combos))
    return rows


def _pivot(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table: dict[tuple[float, float], dict[str, Any]] = {}
    for r in rows:
        key = (r["delay_unit_s"], r["discount"])
        row = table.setdefault(key, {"delay_unit_s": key[0], "discount": key[1]})
        row[f"{r['model']}/{r['scenario']}"] = r["vs_oracle"]
    for row in table.values():
        row["worst"] = max(v for k, v in row.items() if "/" in k)
    return list(table.values())


def _aggregate(sims: Sequence[Simulation]) -> list[dict[str, Any]]:
    """Rows averaged over the seeds' simulations, with the worst seed's ratio to the Oracle."""
    per_seed = [sim.rows() for sim in sims]
    rows = []
    for i, first in enumerate(per_seed[0]):
        same = [rows_[i] for rows_ in per_seed]
        row: dict[str, Any] = {k: first[k] for k in ("model", "scenario", "policy")}
        for key in first:
            if key not in row:
                row[key] = float(np.mean([r[key] for r in same]))
        row["vs_oracle_worst_seed"] = max(r["vs_oracle"] for r in same)
        row["seeds"] = len(sims)
        rows.append(row)
    return rows


def run(ctx: ExperimentContext) -> ExperimentResult:
    out_dir, quick, progress = ctx.out_dir, ctx.quick, ctx.progress
    frames = 800 if quick else 10_000
    seeds = (0,) if quick else (0, 1, 2)
    keys = {seed: scene_key_weights(frames, seed, progress=progress) for seed in seeds}
    rows: list[dict[str, Any]] = []
    plots = []
    notes = [
        f"{frames} frames per run, mean over seeds {', '.join(map(str, seeds))} (plots: seed 0); "
        f"device {SIM_DEVICE_CLASS}, edge {EDGE_CLASS}; every measured component has log-normal "
        f"noise (sd {NOISE}); RTT 20 ms",
        "key frames: SSIM < 0.8 on a synthetic scene, rate "
        + ", ".join(f"{keys[s][1]:.3f}" for s in seeds),
        "vs_oracle: mean delay / the Oracle's; after_change: from the first change on",
        "mulinucb: the ANS authors' algorithm (raw features, a random integer diagonal prior, "
        "offload time in seconds, no discount); mulinucb-scaled: its rules on scaled features, "
        "a λI prior, the reply averaged apart, delays in the registry's unit (the device's "
        "whole-model time / 60); mulinucb-discounted: that, discount "
        f"{DISCOUNT} per frame; mulinucb-link: discounted, plus the upload time at the "
        "last measured link rate as an 8th feature (sensitivity.md: unit and discount)",
    ]
    for model, scenario in itertools.product(MODELS, SCENARIOS):
        sims = [
            simulate(
                model, scenario, POLICIES, frames, seed, key_weights=keys[seed], progress=progress
            )
            for seed in seeds
        ]
        notes.append(f"{model}/{scenario}: {sims[0].world.description}")
        rows += _aggregate(sims)
        plots.append(plot_simulation(sims[0], out_dir / f"{model}_{scenario}.png"))
    if not quick:
        sens = _pivot(sensitivity(frames, keys[0], progress))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "sensitivity.md").write_text(
            "# μLinUCB: mean delay / Oracle's, by delay unit and discount (seed 0)\n\n"
            + markdown_table(sens)
        )
    return ExperimentResult("ans", rows, notes, plots, group_by=("model", "scenario"))
