"""CANS: many devices sharing one edge, learning the cut together (FedLinUCB-DW, DESIGN §4).

Fleets of M devices of K types (device class + model) on their own 3G links (the shipped HSDPA
traces, each device at its own offset into them) share one processor-sharing edge. Every
policy runs on identical fleets (same links, frames, noise): non-cooperative μLinUCB, FedLinUCB
in one pool, grouped by type (D), grouped with warm start (DW), DW with periodic instead of
event-triggered sync, and warm start without grouping; the Oracle (each frame's best cut given
the current load), device-only and edge-only as references. Each device's offline experience
is made first — its model split at its early-exit points in an earlier environment (another
stretch of its link, an edge nobody else used) — saved to a file and loaded back by the runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.defaults import EDGE_CLASS
from coinfer.policies.fedlinucb import Federation
from coinfer.report import ExperimentResult, log_axis, new_figure, save_figure
from coinfer.sim.fleet_policies import FLEET_POLICIES
from coinfer.systems.base import ExperimentContext, JobRunner, serial_jobs
from coinfer.systems.cans.fleet import run_case
from coinfer.systems.cans.worlds import (
    DEVICE_TYPES,
    DEVICES_PER_SLOT,
    NETWORKS,
    WORLDS,
    experience_files,
)

# (world, devices, types, seeds): the prototype case first (most seeds: the bars are
# on it), the heterogeneous fleet, then the 3G fleets from two devices up
SCALES = (
    ("prototype", 2, None, (0, 1, 2, 3, 4, 5, 6)),
    ("mixed", 10, None, (0, 1, 2, 3, 4)),
    ("3g", 2, 1, (0, 1, 2, 3, 4)),
    ("3g", 10, 2, (0, 1, 2)),
    ("3g", 50, 3, (0,)),
    ("3g", 100, 4, (0,)),
)
QUICK_SCALES = (("prototype", 2, None, (0,)), ("mixed", 4, None, (0,)), ("3g", 10, 2, (0,)))
# the learner every policy builds on: DESIGN's μLinUCB (the 7 ANS features) and coinfer's
# μLinUCB with the link feature (``coinfer experiment ans``)
LEARNERS = {"paper": False, "link": True}
COLD = {"fedlinucb-dw": "fedlinucb-d", "fedlinucb-w": "fedlinucb"}  # warm start vs none
Progress = Callable[[str, int, int], None]


Key = tuple[str, str, int, str]  # world, learner, devices, policy


def _by_seed(runs: list[dict[str, Any]]) -> dict[int, float]:
    return {r["seed"]: r["mean_latency_s"] for r in runs}


def _aggregate(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (world, learner, devices, policy), with the ratio to
    non-cooperative μLinUCB (of the means, and the median of the seeds' ratios), how many
    seeds it beat it in, and a warm start's worst seed against the same policy without one."""
    keyed: dict[Key, list[dict[str, Any]]] = {}
    for r in results:
        keyed.setdefault((r["world"], r["learner"], r["devices"], r["policy"]), []).append(r)
    rows = []
    for (world_name, learner, devices, policy), runs in keyed.items():
        noncoop = keyed.get((world_name, learner, devices, "noncoop"))
        row: dict[str, Any] = {
            "world": world_name,
            "learner": learner,
            "devices": devices,
            "types": runs[0]["types"],
            "policy": policy,
            "seeds": len(runs),
        }
        for key in ("mean_latency_s", "first_100_s", "first_200_s", "regret_s", "offload_share"):
            row[key] = float(np.mean([r[key] for r in runs]))
        row["spread_s"] = float(np.ptp([r["mean_latency_s"] for r in runs]))
        if noncoop:
            base = float(np.mean([r["mean_latency_s"] for r in noncoop]))
            row["vs_noncoop"] = row["mean_latency_s"] / base
            mine, theirs = _by_seed(runs), _by_seed(noncoop)
            ratios = [mine[s] / theirs[s] for s in mine if s in theirs]
            row["vs_noncoop_median"] = float(np.median(ratios))
            for first in ("first_100_s", "first_200_s"):
                other = float(np.mean([r[first] for r in noncoop]))
                row[first.replace("_s", "_vs_noncoop")] = row[first] / other
            row["seeds_below_noncoop"] = int(sum(r < 1 for r in ratios))
        cold = keyed.get((world_name, learner, devices, COLD.get(policy, "")))
        if cold:
            mine, theirs = _by_seed(runs), _by_seed(cold)
            row["warm_vs_cold_worst_seed"] = max(mine[s] / theirs[s] for s in mine if s in theirs)
        row["messages"] = float(np.mean([r["messages"] for r in runs]))
        row["messages_per_device"] = row["messages"] / devices
        row["kbytes"] = float(np.mean([r["bytes"] for r in runs])) / 1e3
        rows.append(row)
    return rows


def _smooth(curve: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(curve)))
    return np.convolve(curve, np.ones(window) / window, mode="valid")


Case = tuple[str, int]  # world, devices


def _case_label(case: Case) -> str:
    return f"{case[0]}, M = {case[1]}"


def _plots(
    results: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path, learner: str
) -> list[Path]:
    cases: list[Case] = list(dict.fromkeys((r["world"], r["devices"]) for r in results))
    policies = list(dict.fromkeys(r["policy"] for r in results))
    colours = dict(zip(policies, [f"C{i}" for i in range(len(policies))], strict=True))
    fig, axes = new_figure(cols=len(cases), width=4.6, height=3.8)
    axes = np.atleast_1d(axes)
    for ax, case in zip(axes, cases, strict=True):
        for name in policies:
            curves = [
                r["curve"]
                for r in results
                if (r["world"], r["devices"]) == case and r["policy"] == name
            ]
            if curves:
                mean = np.mean(np.array(curves), axis=0)
                ax.plot(_smooth(mean, 25), label=name, color=colours[name], lw=1.2)
        ax.set_title(_case_label(case))
        ax.set_xlabel("frame (moving mean of 25)")
        ax.set_ylabel("mean delay over devices (s)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"learner: {learner}")
    paths = [save_figure(fig, out / f"latency_over_time_{learner}.png")]
    fig, ax = new_figure(width=max(7.0, 1.4 * len(cases)))
    learners = [p for p in policies if p not in ("oracle", "device-only", "edge-only")]
    width = 0.8 / max(1, len(learners))
    for j, name in enumerate(learners):
        ratio = {
            (r["world"], r["devices"]): r.get("vs_noncoop", np.nan)
            for r in rows
            if r["policy"] == name
        }
        values = [ratio.get(case, np.nan) for case in cases]
        xs = np.arange(len(cases)) + j * width
        ax.bar(xs, values, width, label=name, color=colours[name])
        for x, v in zip(xs, values, strict=True):  # the few-percent differences, as numbers
            if np.isfinite(v) and name != "noncoop":
                ax.text(
                    x,
                    v + 0.01,
                    f"{100 * (v - 1):+.1f}%",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
    top = max([1.0, *(r.get("vs_noncoop", 0) for r in rows if r["policy"] in learners)])
    ax.set_ylim(0, 1.3 * top)  # bars from zero: a 1% difference looks like 1%; room for labels
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(
        np.arange(len(cases)) + 0.4 - width / 2, [_case_label(c) for c in cases], fontsize=7
    )
    ax.set_ylabel("mean delay / non-cooperative")
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    ax.set_title(f"learner: {learner}")
    paths.append(save_figure(fig, out / f"ablation_{learner}.png"))
    fig, ax = new_figure()
    sizes = [c for c in cases if c[0] == "3g"]
    for name in ("fedlinucb", "fedlinucb-d", "fedlinucb-dw", "fedlinucb-dw-periodic"):
        pts = [
            (r["devices"], r["messages_per_device"])
            for r in rows
            if r["policy"] == name and r["world"] == "3g"
        ]
        if pts:
            ax.plot(*zip(*sorted(pts), strict=True), marker="o", label=name, color=colours[name])
    if len(sizes) >= 3:  # a log axis for a sweep of fleet sizes, a linear one for two points
        log_axis(ax, "x")
    ax.set_xlabel("devices M (3G fleets)")
    ax.set_ylabel("messages per device")
    ax.legend(fontsize=7)
    ax.set_title(f"learner: {learner}")
    paths.append(save_figure(fig, out / f"messages_{learner}.png"))
    return paths


Scale = tuple[str, int, int | None, Sequence[int]]  # world, devices, types, seeds


def sweep(
    out_dir: Path,
    scales: Sequence[Scale],
    frames: int,
    policies: Sequence[str] = FLEET_POLICIES,
    jobs_runner: JobRunner = serial_jobs,
    federations: Sequence[Federation] = (Federation(),),
    link_scale: float = 1.0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every (federation, world and scale, seed, policy): each device's offline experience is
    made and saved first, then every run loads it from its file."""
    files = {}
    for w, m, k, seeds in scales:
        for seed in seeds:
            folder = out_dir / "experience" / f"{w}-M{m}-seed{seed}"
            files[(w, m, seed)] = experience_files(m, k, seed, folder, link_scale, w)
    jobs = [
        (m, k, p, seed, frames, files[(w, m, seed)], asdict(fed), link_scale, w)
        for fed in federations
        for w, m, k, seeds in scales
        for seed in seeds
        for p in policies
    ]
    jobs.sort(key=lambda j: -j[0])  # the largest fleets first: better packing on the workers
    return jobs_runner(run_case, jobs, progress, "fleet runs")


def run(ctx: ExperimentContext) -> ExperimentResult:
    out_dir, quick, progress = ctx.out_dir, ctx.quick, ctx.progress
    scales = QUICK_SCALES if quick else SCALES
    frames = 200 if quick else 1000
    feds = [Federation(link_feature=link) for link in LEARNERS.values()]
    results = sweep(
        out_dir, scales, frames, jobs_runner=ctx.jobs, federations=feds, progress=progress
    )
    rows = _aggregate(results)
    order = {p: i for i, p in enumerate(FLEET_POLICIES)}
    cases = list(dict.fromkeys((w, m) for w, m, _, _ in scales))
    rows.sort(
        key=lambda r: (
            cases.index((r["world"], r["devices"])),
            list(LEARNERS).index(r["learner"]),
            order[r["policy"]],
        )
    )
    seeds = "; ".join(f"{w} M = {m}: {len(s)}" for w, m, _, s in scales)
    notes = [
        f"{frames} frames per device; seeds per case (mean over them): {seeds}",
        "learner paper: DESIGN's μLinUCB (7 ANS features); link: with the 8th, link feature",
        "worlds: " + "; ".join(f"{w.name}: {w.description}" for w in WORLDS.values()),
        "networks: " + "; ".join(n.description for n in NETWORKS.values()) + "; noise sd 0.1; "
        f"edge {EDGE_CLASS} with one processor-sharing slot per {DEVICES_PER_SLOT} devices",
        "types: " + "; ".join(f"{n} = {d} + {m}" for n, (d, m) in DEVICE_TYPES.items()),
        "learners: μLinUCB's rules (mulinucb-scaled numerics), no discount; warm start w = "
        f"{Federation().warm_weight} (a prior on estimate and confidence) from records at the "
        "input cut and the exits, sync when det "
        f"grows x{1 + Federation().growth:g} (periodic: every {Federation().period} frames)",
        "vs_noncoop: mean delay over non-cooperative μLinUCB's (vs_noncoop_median: median of "
        "the seeds' ratios); first_100_s/first_200_s: the first 100/200 frames; spread_s: the "
        "seeds' range; warm_vs_cold_worst_seed: a warm start's worst seed against the same "
        "sharing without one",
    ]
    plots = [
        p
        for learner in LEARNERS
        for p in _plots(
            [r for r in results if r["learner"] == learner],
            [r for r in rows if r["learner"] == learner],
            out_dir,
            learner,
        )
    ]
    return ExperimentResult("cans", rows, notes, plots, ("world", "learner", "devices"))
