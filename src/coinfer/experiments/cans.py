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

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from coinfer import partition, zoo
from coinfer.data import trace_names, trace_path
from coinfer.experiments.engine import run_jobs
from coinfer.graph.partition import Partitioning
from coinfer.latency.devices import resolve_device
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.policies import registry
from coinfer.report import ExperimentResult, new_figure, save_figure
from coinfer.sim.env import SimEnv, constant_load
from coinfer.sim.experience import Experience, collect_experience, exit_cuts
from coinfer.sim.fleet import DeviceType, FleetDevice, FleetRun, FleetSim
from coinfer.sim.fleet_roster import FLEET_POLICIES, WARM_POLICIES, Federation, make_fleet_policies
from coinfer.sim.links import concatenate_traces, shifted_trace
from coinfer.video import SyntheticScene, key_frame_weights

# name: (device class, model). Pi-4-class and Jetson-Nano-class CPUs (Edgent's desktop
# regression slowed 8x and 3x) running VGG16 or tiny-YOLOv2.
DEVICE_TYPES: dict[str, tuple[str, str]] = {
    "pi4-vgg16": ("edge-pc/8", "vgg16"),
    "pi4-yolo": ("edge-pc/8", "tiny_yolov2"),
    "nano-vgg16": ("edge-pc/3", "vgg16"),
    "nano-yolo": ("edge-pc/3", "tiny_yolov2"),
}
EDGE = "edge-pc"
DEVICES_PER_SLOT = 4  # the edge gets one edge-pc worth of processor-sharing slot per 4 devices
RTT_S = 0.02
NOISE = 0.1
EXPERIENCE_FRAMES = 30  # offline records per device (5 per exit point)
KEY_FRAMES = 1000  # one synthetic scene's key-frame weights, each device from its own offset
# (devices, types, seeds): the prototype case (most seeds: the bar is on it), then up
SCALES = ((2, 1, (0, 1, 2, 3, 4)), (10, 2, (0, 1, 2)), (50, 3, (0,)), (100, 4, (0,)))
QUICK_SCALES = ((2, 1, (0, 1)), (10, 2, (0,)))
# the learner every policy builds on: DESIGN's μLinUCB (the 7 ANS features) and coinfer's
# μLinUCB with the link feature (``coinfer experiment ans``)
LEARNERS = {"paper": False, "link": True}
Progress = Callable[[str, int, int], None]


@lru_cache(maxsize=8)
def _partition(model: str) -> Partitioning:
    return partition(zoo.create(model), zoo.example_inputs(model))


@lru_cache(maxsize=4)
def _hsdpa(scale: float = 1.0) -> TraceBandwidth:
    names = [n for n in trace_names() if n.startswith("norway_")]
    traces = [TraceBandwidth.from_file(trace_path(n), scale=scale) for n in names]
    return concatenate_traces(traces, "hsdpa" if scale == 1 else f"hsdpa-x{scale:g}")


@lru_cache(maxsize=1)
def _scene_weights() -> tuple[float, ...]:
    weights, _ = key_frame_weights(SyntheticScene(0).frames(KEY_FRAMES))
    return tuple(weights)


def device_type(name: str) -> DeviceType:
    if name not in DEVICE_TYPES:
        raise ValueError(f"unknown device type {name!r}: choose from {', '.join(DEVICE_TYPES)}")
    device, model = DEVICE_TYPES[name]
    return DeviceType(name, model, _partition(model), resolve_device(device), resolve_device(EDGE))


def fleet_devices(
    devices: int, types: int, seed: int, link_scale: float = 1.0
) -> list[FleetDevice]:
    """``devices`` devices, types assigned in turn from the first ``types`` of DEVICE_TYPES,
    each on the HSDPA loop from its own random offset and with its own stretch of key frames."""
    if devices < 1:
        raise ValueError(f"a fleet needs at least one device, got {devices}")
    if not 1 <= types <= len(DEVICE_TYPES):
        raise ValueError(f"types must be in 1..{len(DEVICE_TYPES)}, got {types}")
    kinds = [device_type(n) for n in list(DEVICE_TYPES)[:types]]
    rng = np.random.default_rng(seed)
    base, weights = _hsdpa(link_scale), _scene_weights()
    fleet = []
    for i in range(devices):
        offset = float(rng.uniform(0, base.period))
        start = int(rng.integers(len(weights)))
        link = Link(shifted_trace(base, offset, f"hsdpa+{offset:.0f}s"), RTT_S)
        fleet.append(FleetDevice(kinds[i % types], link, weights[start:] + weights[:start]))
    return fleet


def make_experience(device: FleetDevice, seed: int) -> Experience:
    """The device's early-exit model split at its exits, offline, half a trace loop before
    today's stretch of its link, against an edge nobody else was using."""
    kind = device.kind
    trace = device.link.uplink
    assert isinstance(trace, TraceBandwidth)
    earlier = Link(shifted_trace(trace, trace.period / 2), device.link.rtt_s)
    env = SimEnv(kind.part, kind.device, kind.edge, earlier, constant_load(1.0), NOISE, seed=seed)
    exits = exit_cuts(kind.part)
    text = f"{trace.name} half a loop earlier, uncontended {EDGE}"
    return collect_experience(env, exits, EXPERIENCE_FRAMES, kind.model,
                              DEVICE_TYPES[kind.name][0], EDGE, text)  # fmt: skip


def _save_experiences(
    devices: int, types: int, seed: int, folder: Path, link_scale: float, only_missing: bool
) -> list[Path]:
    """Every device's experience file, ``folder/device-NNN.json``, made (again, unless
    ``only_missing``) from the fleet of that seed."""
    paths = [folder / f"device-{i:03d}.json" for i in range(devices)]
    if not only_missing or not all(p.exists() for p in paths):
        fleet = fleet_devices(devices, types, seed, link_scale)
        for i, (path, device) in enumerate(zip(paths, fleet, strict=True)):
            if not (only_missing and path.exists()):
                make_experience(device, seed * 1000 + i).save(path)
    return paths


def experience_files(
    devices: int, types: int, seed: int, folder: Path, link_scale: float = 1.0
) -> list[str]:
    """Make every device's offline experience and save it, one JSON file per device."""
    return [str(p) for p in _save_experiences(devices, types, seed, folder, link_scale, False)]


def build_sim(
    devices: int,
    types: int,
    seed: int,
    link_scale: float = 1.0,
    shared_uplink_bps: float | None = None,
) -> FleetSim:
    slots = max(1, math.ceil(devices / DEVICES_PER_SLOT))
    fleet = fleet_devices(devices, types, seed, link_scale)
    return FleetSim(fleet, slots, shared_uplink_bps, NOISE, seed=seed)


def run_case(
    devices: int,
    types: int,
    policy: str,
    seed: int,
    frames: int,
    experience: Sequence[str] | None = None,
    federation: dict[str, Any] | None = None,
    link_scale: float = 1.0,
) -> dict[str, Any]:
    """One fleet, one policy, one seed (a job for the engine: plain arguments, plain result)."""
    sim = build_sim(devices, types, seed, link_scale)
    loaded = [Experience.load(p) for p in experience] if experience else None
    fed = Federation(**(federation or {}))
    policies, traffic = make_fleet_policies(policy, sim, loaded, fed)
    run = sim.run(policies, frames)
    return {
        "learner": "link" if fed.link_feature else "paper",
        "devices": devices,
        "types": types,
        "policy": policy,
        "seed": seed,
        **summarise(run),
        "messages": traffic.messages,
        "bytes": traffic.bytes,
        "curve": run.latency_by_frame().tolist(),
    }


def load_or_make_experience(
    devices: int, types: int, seed: int, folder: Path, link_scale: float = 1.0
) -> list[Experience]:
    """Each device's experience from ``folder/device-NNN.json``; files that are missing are
    made (and saved) first, so a folder can be filled once and reused."""
    paths = _save_experiences(devices, types, seed, folder, link_scale, only_missing=True)
    return [Experience.load(p) for p in paths]


def simulate_fleet(
    devices: int,
    types: int,
    policies: Sequence[str],
    frames: int,
    seed: int = 0,
    federation: Federation | None = None,
    link_scale: float = 1.0,
    shared_uplink_bps: float | None = None,
    experience_dir: Path | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every policy on the same fleet (``coinfer fleet``): one row each, with the ratio to
    non-cooperative μLinUCB when it ran."""
    for name in policies:  # before any experience is made: one line naming why not
        registry.check_world(name, "fleet")
    fed = federation or Federation()
    experiences = None
    if any(p in WARM_POLICIES for p in policies):
        scale = "" if link_scale == 1 else f"-x{link_scale:g}"  # experience of its own links
        name = f"M{devices}-K{types}-seed{seed}{scale}"
        folder = experience_dir or Path("results") / "experience" / name
        experiences = load_or_make_experience(devices, types, seed, folder, link_scale)
    rows = []
    for name in policies:
        sim = build_sim(devices, types, seed, link_scale, shared_uplink_bps)
        chosen, traffic = make_fleet_policies(name, sim, experiences, fed)

        def tick(done: int, name: str = name) -> None:
            if progress is not None:
                progress(name, done, devices * frames)

        run = sim.run(chosen, frames, tick)
        rows.append({"policy": name, "devices": devices, "types": types,
                     "learner": "link" if fed.link_feature else "paper", **summarise(run),
                     "messages": traffic.messages, "kbytes": traffic.bytes / 1e3})  # fmt: skip
    base = next((r for r in rows if r["policy"] == "noncoop"), None)
    for row in rows:
        if base is not None:
            row["vs_noncoop"] = row["mean_latency_s"] / base["mean_latency_s"]
    return rows


def summarise(run: FleetRun) -> dict[str, Any]:
    return {
        "mean_latency_s": run.mean_latency(),
        "first_100_s": run.mean_latency(100),
        "regret_s": run.mean_regret(),
        "offload_share": run.offload_share(),
        "per_type_s": run.per_type(),
    }


def _aggregate(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (devices, policy), with the ratio to non-cooperative μLinUCB."""
    keyed: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in results:
        keyed.setdefault((r["learner"], r["devices"], r["policy"]), []).append(r)
    rows = []
    for (learner, devices, policy), runs in keyed.items():
        noncoop = keyed.get((learner, devices, "noncoop"))
        row: dict[str, Any] = {
            "learner": learner,
            "devices": devices,
            "types": runs[0]["types"],
            "policy": policy,
            "seeds": len(runs),
        }
        for key in ("mean_latency_s", "first_100_s", "regret_s", "offload_share"):
            row[key] = float(np.mean([r[key] for r in runs]))
        if noncoop:
            base = float(np.mean([r["mean_latency_s"] for r in noncoop]))
            row["vs_noncoop"] = row["mean_latency_s"] / base
            first = float(np.mean([r["first_100_s"] for r in noncoop]))
            row["first_100_vs_noncoop"] = row["first_100_s"] / first
            paired = [
                r["mean_latency_s"] < n["mean_latency_s"]
                for r, n in zip(runs, noncoop, strict=True)
            ]
            row["seeds_below_noncoop"] = int(sum(paired))
        row["messages"] = float(np.mean([r["messages"] for r in runs]))
        row["messages_per_device"] = row["messages"] / devices
        row["kbytes"] = float(np.mean([r["bytes"] for r in runs])) / 1e3
        rows.append(row)
    return rows


def _smooth(curve: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(curve)))
    return np.convolve(curve, np.ones(window) / window, mode="valid")


def _plots(
    results: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path, learner: str
) -> list[Path]:
    scales = sorted({r["devices"] for r in results})
    policies = list(dict.fromkeys(r["policy"] for r in results))
    colours = dict(zip(policies, [f"C{i}" for i in range(len(policies))], strict=True))
    fig, axes = new_figure(cols=len(scales), width=5.0, height=3.8)
    axes = np.atleast_1d(axes)
    for ax, m in zip(axes, scales, strict=True):
        for name in policies:
            curves = [r["curve"] for r in results if r["devices"] == m and r["policy"] == name]
            if curves:
                mean = np.mean(np.array(curves), axis=0)
                ax.plot(_smooth(mean, 25), label=name, color=colours[name], lw=1.2)
        ax.set_title(f"M = {m}")
        ax.set_xlabel("frame (moving mean of 25)")
        ax.set_ylabel("mean delay over devices (s)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"learner: {learner}")
    paths = [save_figure(fig, out / f"latency_over_time_{learner}.png")]
    fig, ax = new_figure(width=7.0)
    learners = [p for p in policies if p not in ("oracle", "device-only", "edge-only")]
    width = 0.8 / max(1, len(learners))
    for j, name in enumerate(learners):
        ratio = {r["devices"]: r.get("vs_noncoop", np.nan) for r in rows if r["policy"] == name}
        values = [ratio.get(m, np.nan) for m in scales]
        xs = np.arange(len(scales)) + j * width
        ax.bar(xs, values, width, label=name, color=colours[name])
        for x, v in zip(xs, values, strict=True):  # the few-percent differences, as numbers
            if np.isfinite(v) and name != "noncoop":
                ax.text(x, v + 0.01, f"{100 * (v - 1):+.1f}%", ha="center", va="bottom",
                        fontsize=6, rotation=90)  # fmt: skip
    ax.set_ylim(0, 1.3)  # bars from zero: a 1% difference looks like 1%; room for the labels
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(np.arange(len(scales)) + 0.4 - width / 2, [f"M = {m}" for m in scales])
    ax.set_ylabel("mean delay / non-cooperative")
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    ax.set_title(f"learner: {learner}")
    paths.append(save_figure(fig, out / f"ablation_{learner}.png"))
    fig, ax = new_figure()
    for name in ("fedlinucb", "fedlinucb-d", "fedlinucb-dw", "fedlinucb-dw-periodic"):
        pts = [(r["devices"], r["messages_per_device"]) for r in rows if r["policy"] == name]
        if pts:
            ax.plot(*zip(*sorted(pts), strict=True), marker="o", label=name, color=colours[name])
    if len(scales) >= 3:  # a log axis for a sweep of fleet sizes, a linear one for two points
        ax.set_xscale("log")
    ax.set_xlabel("devices M")
    ax.set_ylabel("messages per device")
    ax.legend(fontsize=7)
    ax.set_title(f"learner: {learner}")
    paths.append(save_figure(fig, out / f"messages_{learner}.png"))
    return paths


def sweep(
    out_dir: Path,
    scales: Sequence[tuple[int, int, Sequence[int]]],
    frames: int,
    policies: Sequence[str] = FLEET_POLICIES,
    engine: str = "local",
    federations: Sequence[Federation] = (Federation(),),
    link_scale: float = 1.0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Every (federation, scale, seed, policy): each device's offline experience is made and
    saved first, then every run loads it from its file."""
    files = {}
    for m, k, seeds in scales:
        for seed in seeds:
            folder = out_dir / "experience" / f"M{m}-seed{seed}"
            files[(m, seed)] = experience_files(m, k, seed, folder, link_scale)
    jobs = [(m, k, p, seed, frames, files[(m, seed)], asdict(fed), link_scale)
            for fed in federations for m, k, seeds in scales for seed in seeds
            for p in policies]  # fmt: skip
    jobs.sort(key=lambda j: -j[0])  # the largest fleets first: better packing on the workers
    return run_jobs(run_case, jobs, engine, progress=progress, label="fleet runs")


def run(
    out_dir: Path,
    quick: bool = False,
    progress: Progress | None = None,
    engine: str = "local",
) -> ExperimentResult:
    scales = QUICK_SCALES if quick else SCALES
    frames = 300 if quick else 1000
    feds = [Federation(link_feature=link) for link in LEARNERS.values()]
    results = sweep(out_dir, scales, frames, engine=engine, federations=feds, progress=progress)
    rows = _aggregate(results)
    order = {p: i for i, p in enumerate(FLEET_POLICIES)}
    rows.sort(key=lambda r: (list(LEARNERS).index(r["learner"]), r["devices"], order[r["policy"]]))
    seeds = "; ".join(f"M = {m}: {len(s)}" for m, _, s in scales)
    notes = [
        f"{frames} frames per device; seeds per fleet size (mean over them): {seeds}; "
        f"engine {engine}",
        "learner paper: DESIGN's μLinUCB (7 ANS features); link: with the 8th, link feature",
        "devices on the shipped HSDPA traces (each from its own offset), RTT 20 ms, noise sd 0.1; "
        f"edge {EDGE} with one processor-sharing slot per {DEVICES_PER_SLOT} devices",
        "types: " + "; ".join(f"{n} = {d} + {m}" for n, (d, m) in DEVICE_TYPES.items()),
        "learners: μLinUCB with the link feature, no discount; warm start w = "
        f"{Federation().warm_weight}, sync when det grows x{1 + Federation().growth:g} "
        f"(periodic: every {Federation().period} frames)",
        "vs_noncoop: mean delay over non-cooperative μLinUCB's; first_100_s: the first 100 frames",
    ]
    plots = [p for learner in LEARNERS for p in _plots(
        [r for r in results if r["learner"] == learner],
        [r for r in rows if r["learner"] == learner], out_dir, learner)]  # fmt: skip
    return ExperimentResult("cans", rows, notes, plots, ("learner", "devices"))
