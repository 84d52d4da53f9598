"""`coinfer demo`: a system live on real sockets for about a minute, against its baselines.

- ``ans`` (default): three devices side by side, each with its own edge server on loopback (so
  none queues behind another) and its own shaped link replaying the same real 3G trace from the
  same moment: one learns its cut with μLinUCB (link feature, γ = 0.99), one always offloads
  everything, one never offloads. Halfway through every edge turns ``slowdown`` times slower
  (the server's run-time CONTROL), so the best cut moves.
- ``edgent``: BranchyNet AlexNet (trained weights) on an emulated Raspberry Pi 3, the held-out
  digits as frames, a 3G trace at half speed and a 100 ms deadline: dynamic Edgent against
  static Edgent (planned for the link at the start) and device-only at exit 1.
- ``stopping``: the MLP layer by layer on an emulated Raspberry Pi 3 over a Rayleigh-fading
  uplink (10 dB): the optimal stopping rule against the best fixed split, edge-only and
  device-only, one after the other on the same channel draws; each policy's mean measured cost
  beside its rule's analytic cost (on the times measured before, and during, its run).

Each demo states what the user should expect to see and whether it happened.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coinfer import zoo
from coinfer.apps.live import link_history_bps, run_stages
from coinfer.assembly import DeviceSetup, device_setup, load_model
from coinfer.data import trace_path
from coinfer.device.client import DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.inputs import live_frames
from coinfer.device.live_env import run_live_env
from coinfer.device.records import FrameRecord, summary
from coinfer.device.requests import set_edge_slowdown
from coinfer.device.stage_env import TaskRecord
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import ProcessServer, zoo_store
from coinfer.errors import BadValueError
from coinfer.latency.devices import MeasuredDevice, ScaledDevice
from coinfer.latency.host import configure_host, settle_heap
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.policies import registry
from coinfer.report import new_figure, save_figure
from coinfer.systems.cans.demo import DEVICES as CANS_DEVICES
from coinfer.systems.cans.demo import WLAN as CANS_NETWORK
from coinfer.systems.cans.demo import CansResult, run_cans

SYSTEMS = ("ans", "edgent", "stopping", "cans")
POLICIES = {
    "ans": ("mulinucb-link", "edge-only", "device-only"),
    "edgent": ("edgent-dynamic", "edgent", "device-only"),
    "stopping": ("stopping", "fixed-split", "edge-only", "device-only"),
    "cans": tuple(name for name, _, _ in CANS_DEVICES),  # devices, each with its policy
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "ans": {"model": "alexnet", "device": "host/30", "trace_scale": 8.0},
    "edgent": {"model": "branchy_alexnet", "device": "rpi3", "trace_scale": 0.5},
    "stopping": {"model": "mlp", "device": "rpi3", "trace_scale": 1.0},
    # a Jetson-Nano-class board running VGG16 (the fleet's nano-vgg16): offloading the raw
    # frame pays on WLAN, and a lone learner that has not found that out pays the device's 2.2 s
    "cans": {"model": "vgg16", "device": "edge-pc/3", "trace_scale": 8.0},
}
EXPECT = {
    "ans": "μLinUCB below device-only before the edge slows down (it offloads), and below "
    "edge-only after (it moves its cut)",
    "edgent": "dynamic Edgent meets the deadline more often than static Edgent",
    "stopping": "the optimal rule costs least, and its measured cost is within 5% of its "
    "analytic cost",
    "cans": "the cooperating pair's mean latency below the non-cooperating pair's",
}


@dataclass(frozen=True)
class DemoConfig:
    system: str = "ans"
    model: str | None = None  # the system's own by default
    device: str | None = None
    trace: str = "norway_bus_1"
    trace_scale: float | None = None
    rtt_s: float = 0.02
    duration_s: float = 50.0
    slowdown: float = 30.0  # ans: the edge, halfway through
    latency_req_s: float = 0.1  # edgent
    max_frames: int = 1000

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise BadValueError(
                f"--system must be one of {', '.join(SYSTEMS)}, not {self.system!r}"
            )
        if self.model is not None and self.model not in zoo.names():
            raise BadValueError(
                f"--model {self.model!r}: the demo runs zoo models "
                f"({', '.join(zoo.names())}); your own runs with coinfer serve + "
                f"coinfer run"
            )
        if self.system == "edgent" and self.model not in (None, "branchy_alexnet"):
            raise BadValueError("--system edgent needs a multi-exit model: branchy_alexnet")

    def get(self, key: str) -> Any:
        value = getattr(self, key)
        return DEFAULTS[self.system][key] if value is None else value

    def link_spec(self) -> dict[str, Any]:
        """The link the devices see, as the JSON records it (cans: the fleet's WLAN class)."""
        if self.system == "cans":
            from coinfer.systems.cans.worlds import NETWORKS

            wlan = NETWORKS[CANS_NETWORK]
            return {"trace": "hsdpa", "trace_scale": wlan.trace_scale, "rtt_s": wlan.rtt_s}
        return {"trace": self.trace, "trace_scale": self.get("trace_scale"), "rtt_s": self.rtt_s}


@dataclass
class DemoRun:
    config: DemoConfig
    records: dict[str, list[FrameRecord]] = field(default_factory=dict)
    correct: dict[str, list[bool | None]] = field(default_factory=dict)
    stage_rows: list[dict[str, Any]] = field(default_factory=list)
    slowdown_at_s: float = 0.0
    warnings: list[str] = field(default_factory=list)  # e.g. a host too loaded to tell
    cans: CansResult | None = None

    def pairs(self) -> dict[str, float | None]:
        """cans: each pair's mean latency, the mean of its devices' means (a device on a
        faster stretch of link runs more frames: it must not outweigh its partner)."""
        means: dict[str, float | None] = {}
        for pair, prefix in (("cooperating", "coop"), ("alone", "alone")):
            devices = [
                float(np.mean([r.total_s for r in rs]))
                for n, rs in self.records.items()
                if n.startswith(prefix) and rs
            ]
            means[pair] = float(np.mean(devices)) if len(devices) == 2 else None
        return means

    def rows(self) -> list[dict[str, Any]]:
        if self.stage_rows:
            return self.stage_rows
        if self.cans is not None:
            return self._cans_rows(self.cans)
        rows = []
        req = self.config.latency_req_s
        for name, records in self.records.items():
            row: dict[str, Any] = {
                "policy": name,
                **{
                    k: v
                    for k, v in summary(records).items()
                    if k in ("frames", "offloaded", "fallbacks", "mean_latency_s")
                },
            }
            if self.config.system == "ans":
                before = [r.total_s for r in records if r.started_s < self.slowdown_at_s]
                after = [r.total_s for r in records if r.started_s >= self.slowdown_at_s]
                row["before_slowdown_s"] = float(np.mean(before)) if before else None
                row["after_slowdown_s"] = float(np.mean(after)) if after else None
            else:
                known = [c for c in self.correct.get(name, []) if c is not None]
                row["accuracy"] = float(np.mean(known)) if known else None
                hits = [r.total_s <= req for r in records]
                row["deadline_hit_rate"] = float(np.mean(hits)) if hits else None
            rows.append(row)
        return rows

    def _cans_rows(self, cans: CansResult) -> list[dict[str, Any]]:
        policies = {name: policy for name, policy, _ in CANS_DEVICES}
        rows = []
        for name, records in self.records.items():
            fed = cans.federation.get(name) or {}
            done = summary(records)
            rows.append(
                {
                    "policy": name,
                    "learner": policies[name],
                    **{k: done[k] for k in ("frames", "offloaded", "fallbacks", "mean_latency_s")},
                    "messages": fed.get("messages", 0),
                    "bytes": fed.get("bytes", 0),
                    "error": cans.errors.get(name),
                }
            )
        return rows

    def agreement(self) -> bool | None:
        """cans: whether live and simulated pairs differ in the same direction."""
        live, sim = self.pairs(), self.cans.simulated if self.cans else {}
        if None in live.values() or len(sim) < 2:
            return None
        assert live["cooperating"] is not None and live["alone"] is not None
        return (live["cooperating"] < live["alone"]) == (sim["cooperating"] < sim["alone"])

    def verdict(self) -> tuple[str, bool]:
        """What the user should have seen, and whether they did."""
        system = self.config.system
        if system == "cans":
            pairs = self.pairs()
            coop, alone = pairs["cooperating"], pairs["alone"]
            return EXPECT[system], coop is not None and alone is not None and coop < alone
        rows = {r["policy"]: r for r in self.rows()}
        if system == "ans":
            # the learner's story is its move: the whole run's mean is mostly the frames before
            # the slowdown (they are the fast ones), where offloading and learning are one
            mine = rows["mulinucb-link"]

            def below(phase: str, other: str) -> bool:
                a, b = mine[phase], rows[other][phase]
                return a is not None and b is not None and a < b

            held = below("before_slowdown_s", "device-only") and below(
                "after_slowdown_s", "edge-only"
            )
        elif system == "edgent":
            dyn, static = rows["edgent-dynamic"], rows["edgent"]
            held = (dyn["deadline_hit_rate"] or 0.0) > (static["deadline_hit_rate"] or 0.0)
        else:
            best = rows["stopping"]
            held = (
                all(best["mean_cost"] <= r["mean_cost"] for r in rows.values())
                and abs(best["mean_cost"] / best["analytic_cost"] - 1) <= 0.05
            )
        return EXPECT[system], held

    def plot(self, path: Path) -> Path:
        """Latency per frame above, what each policy chose below (the cut; Edgent's exit), the
        slowdown (ans) or the deadline (edgent) marked: the learner's move is visible."""
        if self.stage_rows:
            return _plot_costs(self, path)
        if self.cans is not None:
            return _plot_pairs(self, path)
        system = self.config.system
        fig, (top, bottom) = new_figure(width=8.0, height=3.0, rows=2, sharex=True)
        for name, records in self.records.items():
            sparse = len(records) < 60
            top.plot(
                [r.started_s for r in records],
                [r.total_s for r in records],
                lw=0.8,
                marker="." if sparse else None,
                ls="-" if not sparse else ":",
                label=name,
            )
            chosen = [
                r.exit if system == "edgent" and r.exit is not None else r.cut for r in records
            ]
            bottom.plot([r.started_s for r in records], chosen, ".", ms=3, label=name)
        if system == "ans":
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
        else:
            top.axhline(
                self.config.latency_req_s,
                color="red",
                ls="--",
                lw=0.8,
                label=f"deadline {1e3 * self.config.latency_req_s:g} ms",
            )
        top.set_ylim(bottom=0)
        top.set_ylabel("frame latency (s)")
        bottom.set_ylabel("exit chosen" if system == "edgent" else "cut chosen")
        bottom.set_xlabel("time since start (s)")
        top.set_title(
            f"{self.config.get('model')}, device {self.config.get('device')}, link "
            f"{self.config.trace} x{self.config.get('trace_scale'):g}"
        )
        top.legend(fontsize=8, loc="upper left")
        return save_figure(fig, path)


def _plot_pairs(run: DemoRun, path: Path) -> Path:
    """cans: each device's latency over its frames (moving mean), pairs in two colours."""
    fig, ax = new_figure(width=8.0, height=3.6)
    colours = {"coop": "tab:blue", "alone": "tab:orange"}
    for name, records in run.records.items():
        if not records:
            continue
        values = np.array([r.total_s for r in records])
        window = max(1, min(10, len(values)))
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ls = "-" if name.endswith("1") else "--"
        ax.plot(
            np.arange(window, len(values) + 1),
            smooth,
            ls=ls,
            lw=1.2,
            color=colours[name.split("-")[0]],
            label=name,
        )
    pairs = run.pairs()
    ax.set_xlabel("frame (moving mean of up to 10)")
    ax.set_ylabel("frame latency (s)")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"{run.config.get('model')} on {run.config.get('device')} devices, WLAN links: "
        f"cooperating {pairs['cooperating'] or 0:.3f} s, alone "
        f"{pairs['alone'] or 0:.3f} s (mean)",
        fontsize=9,
    )
    ax.legend(fontsize=8, ncol=2)
    return save_figure(fig, path)


def _plot_costs(run: DemoRun, path: Path) -> Path:
    fig, ax = new_figure(width=7.0)
    names = [r["policy"] for r in run.stage_rows]
    xs = np.arange(len(names))
    ax.bar(
        xs - 0.2,
        [r["mean_cost"] for r in run.stage_rows],
        0.4,
        yerr=[r["ci95"] or 0.0 for r in run.stage_rows],
        label="measured (95% CI)",
    )
    ax.bar(xs + 0.2, [r["analytic_cost"] for r in run.stage_rows], 0.4, label="analytic")
    ax.set_xticks(xs, names)
    ax.set_ylabel("mean cost per task (J + w·s)")
    ax.set_title(f"{run.config.get('model')} over Rayleigh fading, 10 dB, w = 1")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


async def _run_frames(
    config: DemoConfig,
    setup: DeviceSetup,
    servers: list[ProcessServer],
    on_frame: Callable[[str, FrameRecord], None] | None,
    run: DemoRun,
) -> DemoRun:
    system = config.system
    link = Link(
        TraceBandwidth.from_file(trace_path(config.trace), scale=config.get("trace_scale")),
        config.rtt_s,
    )
    data = live_frames(setup.model, config.max_frames)
    history = link_history_bps(config.trace, config.get("trace_scale"), link)
    knowledge = setup.knowledge(
        "live", link, latency_req_s=config.latency_req_s, link_history_bps=history
    )
    token = servers[0].options.token
    settle_heap()  # the devices' model and frames are ready: no collection walks them again
    start = time.monotonic()
    run.slowdown_at_s = config.duration_s / 2 if system == "ans" else config.duration_s

    async def device(name: str, server: ProcessServer) -> None:
        policy = registry.create(name, knowledge)
        client = DeviceClient.for_setup(setup, Endpoint(server.address, token), link)
        run.records[name] = []

        def record(frame: FrameRecord) -> None:
            run.records[name].append(frame)
            if on_frame is not None:
                on_frame(name, frame)

        env = await run_live_env(
            client,
            policy,
            data.inputs,
            data.key_weights,
            record,
            start,
            config.duration_s,
            labels=data.labels,
            monitor=registry.entry(name).watches_link,
        )
        run.correct[name] = env.correct

    async def slow_down() -> None:
        if system != "ans":
            return
        await asyncio.sleep(run.slowdown_at_s)
        for server in servers:  # over the wire, as an operator would
            await set_edge_slowdown(Endpoint(server.address, token), config.slowdown)

    await asyncio.gather(
        slow_down(), *(device(n, s) for n, s in zip(POLICIES[system], servers, strict=True))
    )
    return run


def _run_stages(
    config: DemoConfig,
    setup: DeviceSetup,
    server: ProcessServer,
    on_task: Callable[[str, int, int], None] | None,
    run: DemoRun,
) -> DemoRun:
    """The stopping rules one after the other, each a share of the duration's tasks."""
    token = server.options.token
    names = POLICIES["stopping"]
    tasks = max(20, int(config.duration_s * 4))  # device-only takes ~0.18 s a task: ~a minute
    calibration = None  # measured once: every rule on the same times
    for name in names:

        def report(record: TaskRecord, name: str = name) -> None:
            if on_task is not None:
                on_task(name, record.task + 1, tasks)

        result = run_stages(
            setup,
            name,
            tasks,
            Endpoint(server.address, token),
            calibration=calibration,
            on_task=report,
        )
        calibration = result.calibration
        doc = result.summary
        run.stage_rows.append(
            {
                k: doc[k]
                for k in (
                    "policy",
                    "tasks",
                    "mean_cost",
                    "ci95",
                    "analytic_cost",
                    "analytic_cost_as_run",
                    "fallbacks",
                )
            }
        )
    return run


LOADED_RATIO = 1.5  # the model this much slower than when profiled: the host is busy


def host_load(setup: DeviceSetup, repeats: int = 5) -> str | None:
    """A warning when this host now runs the model much slower than when it was profiled (another
    process using the cores): the emulated device is then slower than its class, and the story
    the demo tells may not hold."""
    model = setup.model
    with torch.no_grad():
        model.net(*model.inputs)  # warm
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.net(*model.inputs)
            times.append(time.perf_counter() - start)
    now = float(np.median(times))
    device = setup.device
    factor = 1.0
    while isinstance(device, ScaledDevice):  # host/N: N times the measured host
        factor *= device.factor
        device = device.base
    if not isinstance(device, MeasuredDevice):
        return None  # a published class: its times do not depend on this host
    profiled = setup.front_s[-1] / factor
    if profiled <= 0 or now <= LOADED_RATIO * profiled:
        return None
    return (
        f"this host is busy: {model.name} runs {now / profiled:.1f}x slower than when the "
        f"device was profiled, so the emulated device is slower than its class and the "
        f"outcome may differ (stop other work, or pass a fixed class: --device rpi3)"
    )


def run_demo(
    config: DemoConfig,
    on_frame: Callable[[str, FrameRecord], None] | None = None,
    on_task: Callable[[str, int, int], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> DemoRun:
    configure_host()  # the devices' process; each server configures its own
    run = DemoRun(config)
    if config.system == "cans":  # device processes of their own, one federated edge
        run.cans = run_cans(
            config.get("model"),
            config.get("device"),
            config.duration_s,
            config.max_frames,
            on_frame=on_frame,
            on_stage=on_stage,
        )
        run.records = run.cans.records
        return run
    # the emulated device is profiled before anything else starts: servers loading their models
    # beside the profile would make the device look many times slower than it is
    setup = device_setup(load_model(config.get("model")), config.get("device"), "host")
    # CONTROL needs the token: a fresh one per demo, known only to its own processes
    token = secrets.token_urlsafe(16)
    count = 1 if config.system == "stopping" else len(POLICIES[config.system])
    options = ServerOptions(token=token)
    servers = [ProcessServer(zoo_store, (config.get("model"),), options) for _ in range(count)]
    for server in servers:  # start all, then wait: they load their models in parallel
        server.start()
    for server in servers:
        server.wait_ready()
    try:
        loaded = host_load(setup)
        if loaded is not None:
            run.warnings.append(loaded)
        if config.system == "stopping":
            return _run_stages(config, setup, servers[0], on_task, run)
        return asyncio.run(_run_frames(config, setup, servers, on_frame, run))
    finally:
        for server in servers:
            server.stop()
