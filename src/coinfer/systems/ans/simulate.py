"""One simulated device, every policy side by side (``coinfer simulate``): the same frames
(a synthetic video's SSIM key frames, or a video file's), link, edge and noise for each, scored
against the Oracle; and the plot of such a run."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coinfer import partition
from coinfer.defaults import DISCOUNT, EDGE_CLASS, SIM_DEVICE_CLASS
from coinfer.errors import BadValueError
from coinfer.latency.devices import resolve_device
from coinfer.latency.profiler import profile_ops
from coinfer.report import legend_beside, log_axis, new_figure, save_figure
from coinfer.sim.compare import POLICIES, compare
from coinfer.sim.env import SimEnv
from coinfer.sim.scoring import RunStats
from coinfer.systems.ans.scenarios import World, build_world
from coinfer.video import SyntheticScene, key_frame_weights, video_frames
from coinfer.zoo.spec import ModelSpec

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
        raise BadValueError(f"{video}: the video has no frames")
    while len(weights) < frames:  # a short video repeats (its first frame is then a key frame)
        weights += weights[: frames - len(weights)]
    return weights, rate


def environments(
    model: str | ModelSpec,
    world: World,
    key_weights: Sequence[float],
    seed: int = 0,
    device: str = SIM_DEVICE_CLASS,
    edge: str = EDGE_CLASS,
    noise: float = NOISE,
) -> Callable[[], SimEnv]:
    """A maker of fresh, identical environments (same frames, link, edge, noise) for ``model``
    in ``world``: one per policy compared."""
    spec = ModelSpec.of(model)
    inputs = spec.example_inputs()
    part = partition(spec.build(), inputs, leaf_modules=spec.leaf)
    measured: list[dict[str, float]] = []

    def host_profile() -> dict[str, float]:  # measured once, when a class needs this host
        if not measured:
            measured.append(profile_ops(part, inputs))
        return measured[0]

    dev = resolve_device(device, host_profile)
    edg = resolve_device(edge, host_profile)

    def new_env() -> SimEnv:
        return SimEnv(
            part,
            dev,
            edg,
            world.link,
            world.edge_load,
            noise,
            world.frame_interval_s,
            key_weights,
            seed,
            world.clock,
        )

    return new_env


def simulate(
    model: str | ModelSpec = "vgg16",
    scenario: str = "stationary",
    policies: Sequence[str] = POLICIES,
    frames: int = 10_000,
    seed: int = 0,
    device: str = SIM_DEVICE_CLASS,
    edge: str = EDGE_CLASS,
    trace: str | Path | None = None,
    trace_scale: float = 1.0,
    noise: float = NOISE,
    discount: float = DISCOUNT,
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
    return Simulation(ModelSpec.of(model).name, device, edge, world, frames, seed, key_rate, runs)


def _moving_average(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    window = max(1, min(window, len(v)))
    return np.convolve(v, np.ones(window) / window, mode="valid")


COLOURS = {
    "oracle": "black",
    "best-fixed": "tab:grey",
    "neurosurgeon": "tab:green",
    "linucb": "tab:red",
    "mulinucb": "tab:purple",
    "mulinucb-scaled": "tab:pink",
    "mulinucb-discounted": "tab:orange",
    "mulinucb-link": "tab:blue",
}
BASELINE_COLOURS = ("tab:brown", "tab:olive", "tab:cyan", "goldenrod")


def plot_simulation(sim: Simulation, path: Path) -> Path:
    """Delay over time (moving average), cumulative regret, and the chosen cut, per policy."""
    fig, (ax_delay, ax_regret, ax_cut) = new_figure(width=9, height=3.0, rows=3, sharex=True)
    window = max(10, sim.frames // 100)
    for name, run in sim.runs.items():
        colour = COLOURS.get(name)
        if colour is None and len(sim.runs) > len(COLOURS):
            continue  # the static baselines would crowd the plot; the table has them
        if colour is None:  # a baseline asked for: a colour no learner has
            others = [n for n in sim.runs if n not in COLOURS]
            colour = BASELINE_COLOURS[others.index(name) % len(BASELINE_COLOURS)]
        smooth = _moving_average(run.delays, window)
        ax_delay.plot(
            np.arange(len(smooth)) + len(run.delays) - len(smooth),
            smooth,
            label=name,
            lw=1,
            color=colour,
        )
        ax_regret.plot(np.cumsum(run.regrets), label=name, lw=1, color=colour)
    oracle = sim.runs["oracle"]
    ax_cut.step(
        range(len(oracle.cuts)), oracle.cuts, where="post", color="black", lw=1.2, label="oracle"
    )
    learners = [n for n in sim.runs if n not in ("oracle", "best-fixed") and n in COLOURS]
    for offset, name in zip(
        np.linspace(-0.25, 0.25, max(len(learners), 1)), learners, strict=False
    ):
        ax_cut.plot(
            np.asarray(sim.runs[name].cuts) + offset,
            ".",
            ms=1.5,
            alpha=0.5,
            color=COLOURS[name],
            label=name,
        )
    for change in sim.world.changes:
        for ax in (ax_delay, ax_regret, ax_cut):
            ax.axvline(change, color="grey", ls="--", lw=0.8)
    ax_delay.set_ylabel(f"delay (s), mean of {window}")
    log_axis(ax_delay)
    ax_regret.set_ylabel("cumulative regret (s)")
    ax_cut.set_ylabel("chosen cut (offset per policy)")
    ax_cut.set_xlabel("frame")
    legend_beside(ax_delay, fontsize=7)
    legend_beside(ax_cut, fontsize=7, markerscale=6)
    ax_delay.set_title(f"{sim.model}, {sim.world.name}: {sim.world.description}", fontsize=9)
    for ax in (ax_delay, ax_regret, ax_cut):
        ax.grid(True, alpha=0.3)
    return save_figure(fig, path)
