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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coinfer import partition, zoo
from coinfer.experiments.report import ExperimentResult, markdown_table, new_figure, save_figure
from coinfer.latency.devices import resolve_device
from coinfer.latency.profiler import profile_ops
from coinfer.policies.bandits import MuLinUCB
from coinfer.sim.env import SimEnv
from coinfer.sim.roster import DEFAULT_DISCOUNT, POLICIES, compare
from coinfer.sim.runner import RunStats, run_policy
from coinfer.sim.scenarios import DEFAULT_DEVICE, DEFAULT_EDGE, SCENARIOS, World, build_world
from coinfer.video import SyntheticScene, key_frame_weights, video_frames

MODELS = ("vgg16", "tiny_yolov2")
NOISE = 0.1  # log-normal standard deviation of every measured component
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class Simulation:
    model: str
    device: str
    edge: str
    world: World
    frames: int
    seed: int
    key_rate: float
    runs: dict[str, RunStats]

    def rows(self) -> list[dict[str, Any]]:
        """One row per policy; ``vs_oracle`` is its mean delay over the Oracle's."""
        oracle = self.runs["oracle"]
        change = self.world.changes[0] if self.world.changes else None
        rows = []
        for name, run in self.runs.items():
            row: dict[str, Any] = {
                "model": self.model,
                "scenario": self.world.name,
                "policy": name,
                **run.summary(),
                "vs_oracle": run.mean_delay_s / oracle.mean_delay_s,
            }
            if change is not None:
                row["after_change_s"] = run.mean_delay_from(change)
                row["after_change_vs_oracle"] = row["after_change_s"] / oracle.mean_delay_from(
                    change
                )
            rows.append(row)
        return rows


def scene_key_weights(
    frames: int, seed: int = 0, video: str | Path | None = None, progress: Progress | None = None
) -> tuple[list[float], float]:
    """Key-frame weights of ``frames`` frames of a synthetic scene (or of a video file, looped
    when shorter), and the key-frame rate."""
    source = video_frames(video) if video is not None else SyntheticScene(seed).frames(frames)

    def tick(i: int) -> None:
        if progress is not None:
            progress("key frames", i + 1, frames)

    weights, rate = key_frame_weights(itertools.islice(source, frames), on_frame=tick)
    if not weights:
        raise ValueError(f"{video}: the video has no frames")
    while len(weights) < frames:  # a short video repeats (its first frame is then a key frame)
        weights += weights[: frames - len(weights)]
    return weights, rate


def environments(
    model: str,
    world: World,
    key_weights: Sequence[float],
    seed: int = 0,
    device: str = DEFAULT_DEVICE,
    edge: str = DEFAULT_EDGE,
    noise: float = NOISE,
) -> Callable[[], SimEnv]:
    """A maker of fresh, identical environments (same frames, link, edge, noise) for ``model``
    in ``world``: one per policy compared."""
    net = zoo.create(model)
    inputs = zoo.example_inputs(model)
    part = partition(net, inputs)
    measured: list[dict[str, float]] = []

    def host_profile() -> dict[str, float]:  # measured once, when a class needs this host
        if not measured:
            measured.append(profile_ops(part, inputs))
        return measured[0]

    dev = resolve_device(device, host_profile)
    edg = resolve_device(edge, host_profile)

    def new_env() -> SimEnv:
        return SimEnv(part, dev, edg, world.link, world.edge_load, noise,
                      world.frame_interval_s, key_weights, seed, world.clock)  # fmt: skip

    return new_env


def simulate(
    model: str = "vgg16",
    scenario: str = "stationary",
    policies: Sequence[str] = POLICIES,
    frames: int = 10_000,
    seed: int = 0,
    device: str = DEFAULT_DEVICE,
    edge: str = DEFAULT_EDGE,
    trace: str | Path | None = None,
    trace_scale: float = 1.0,
    noise: float = NOISE,
    discount: float = DEFAULT_DISCOUNT,
    key_weights: tuple[list[float], float] | None = None,
    video: str | Path | None = None,
    progress: Progress | None = None,
) -> Simulation:
    """Every policy in ``policies`` on the same frames, link, edge and noise (one seed)."""
    world = build_world(scenario, frames, trace, trace_scale)
    weights, key_rate = key_weights or scene_key_weights(frames, seed, video, progress)
    new_env = environments(model, world, weights, seed, device, edge, noise)

    def tick(name: str, i: int) -> None:
        if progress is not None and ((i + 1) % 50 == 0 or i + 1 == frames):
            progress(name, i + 1, frames)

    runs = compare(policies, new_env, frames, discount, tick if progress else None)
    return Simulation(model, device, edge, world, frames, seed, key_rate, runs)


def _moving_average(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    window = max(1, min(window, len(v)))
    return np.convolve(v, np.ones(window) / window, mode="valid")


COLOURS = {"oracle": "black", "best-fixed": "tab:grey", "neurosurgeon": "tab:green",
           "linucb": "tab:red", "mulinucb": "tab:purple", "mulinucb-discounted": "tab:orange",
           "mulinucb-link": "tab:blue"}  # fmt: skip


def plot_simulation(sim: Simulation, path: Path) -> Path:
    """Delay over time (moving average), cumulative regret, and the chosen cut, per policy."""
    fig, (ax_delay, ax_regret, ax_cut) = new_figure(width=9, height=3.0, rows=3, sharex=True)
    window = max(10, sim.frames // 100)
    for name, run in sim.runs.items():
        colour = COLOURS.get(name)
        if colour is None and len(sim.runs) > len(COLOURS):
            continue  # the static baselines would crowd the plot; the table has them
        smooth = _moving_average(run.delays, window)
        ax_delay.plot(np.arange(len(smooth)) + len(run.delays) - len(smooth), smooth,
                      label=name, lw=1, color=colour)  # fmt: skip
        ax_regret.plot(np.cumsum(run.regrets), label=name, lw=1, color=colour)
    oracle = sim.runs["oracle"]
    ax_cut.step(range(len(oracle.cuts)), oracle.cuts, where="post", color="black", lw=1.2,
                label="oracle")  # fmt: skip
    learners = [n for n in sim.runs if n not in ("oracle", "best-fixed") and n in COLOURS]
    for offset, name in zip(
        np.linspace(-0.25, 0.25, max(len(learners), 1)), learners, strict=False
    ):
        ax_cut.plot(np.asarray(sim.runs[name].cuts) + offset, ".", ms=1.5, alpha=0.5,
                    color=COLOURS[name], label=name)  # fmt: skip
    for change in sim.world.changes:
        for ax in (ax_delay, ax_regret, ax_cut):
            ax.axvline(change, color="grey", ls="--", lw=0.8)
    ax_delay.set_ylabel(f"delay (s), mean of {window}")
    ax_delay.set_yscale("log")
    ax_regret.set_ylabel("cumulative regret (s)")
    ax_cut.set_ylabel("chosen cut (offset per policy)")
    ax_cut.set_xlabel("frame")
    ax_delay.legend(fontsize=7, ncol=3)
    ax_cut.legend(fontsize=7, markerscale=6, ncol=3)
    ax_delay.set_title(f"{sim.model}, {sim.world.name}: {sim.world.description}", fontsize=9)
    for ax in (ax_delay, ax_regret, ax_cut):
        ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


UNITS_S = (1e-3, 1e-2, 1e-1, 1.0)
DISCOUNTS = (1.0, 0.995, 0.99, 0.98)


def sensitivity(
    frames: int, key_weights: tuple[list[float], float], progress: Progress | None = None
) -> list[dict[str, Any]]:
    """μLinUCB's mean delay over the Oracle's for each delay unit and discount, every model
    and scenario: how much the two choices the paper leaves open matter."""
    rows = []
    combos = list(itertools.product(MODELS, SCENARIOS))
    for done, (model, scenario) in enumerate(combos):
        new_env = environments(model, build_world(scenario, frames), key_weights[0])
        oracle = compare(["oracle"], new_env, frames)["oracle"].mean_delay_s
        for unit, gamma in itertools.product(UNITS_S, DISCOUNTS):
            env = new_env()
            front = [c.device_s for c in env.costs()]
            policy = MuLinUCB(env.cuts, front, discount=gamma, delay_unit_s=unit)
            run = run_policy(env, policy, frames)
            rows.append({"model": model, "scenario": scenario, "delay_unit_s": unit,
                         "discount": gamma, "vs_oracle": run.mean_delay_s / oracle})  # fmt: skip
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


def run(out_dir: Path, quick: bool = False, progress: Progress | None = None) -> ExperimentResult:
    frames = 1_500 if quick else 10_000
    seeds = (0,) if quick else (0, 1, 2)
    keys = {seed: scene_key_weights(frames, seed, progress=progress) for seed in seeds}
    rows: list[dict[str, Any]] = []
    plots = []
    notes = [
        f"{frames} frames per run, mean over seeds {', '.join(map(str, seeds))} (plots: seed 0); "
        f"device {DEFAULT_DEVICE}, edge {DEFAULT_EDGE}; every measured component has log-normal "
        f"noise (sd {NOISE}); RTT 20 ms",
        "key frames: SSIM < 0.8 on a synthetic scene, rate "
        + ", ".join(f"{keys[s][1]:.3f}" for s in seeds),
        "vs_oracle: mean delay / the Oracle's; after_change: from the first change on",
        "mulinucb: the paper's rules (no discount); mulinucb-discounted: discount "
        f"{DEFAULT_DISCOUNT} per frame; mulinucb-link: discounted, plus the upload time at the "
        "last measured link rate as an 8th feature; delays in units of 0.1 s (sensitivity.md)",
    ]
    for model, scenario in itertools.product(MODELS, SCENARIOS):
        sims = [simulate(model, scenario, POLICIES, frames, seed, key_weights=keys[seed],
                         progress=progress) for seed in seeds]  # fmt: skip
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
