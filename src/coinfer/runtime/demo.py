"""`coinfer demo`: live μLinUCB against the static baselines, on real sockets, for a minute.

Three devices run side by side, each with its own edge server on loopback (so none queues
behind another) and its own shaped link replaying the same real 3G trace from the same moment:
one learns its cut with μLinUCB (link feature, γ = 0.99), one always offloads everything, one
never offloads. Halfway through, every edge turns ``slowdown`` times slower (the run-time
CONTROL of the server), so the best cut moves. A live table follows the three; at the end the
mean latencies are compared and a PNG of latency over time is written.
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

from coinfer.data import trace_path
from coinfer.experiments.report import new_figure, save_figure
from coinfer.latency.devices import resolve_device
from coinfer.latency.host import configure_host, settle_heap
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.latency.profiler import profile_ops
from coinfer.runtime.client import (
    DeviceClient,
    FrameRecord,
    emulated_front_seconds,
    set_edge_slowdown,
    summary,
)
from coinfer.runtime.live import (
    ProcessServer,
    load_model,
    make_live_policy,
    video_inputs,
    zoo_store,
)

POLICIES = ("mulinucb-link", "edge-only", "device-only")


@dataclass(frozen=True)
class DemoConfig:
    model: str = "alexnet"
    device: str = "host/30"  # a device thirty times slower than this host
    trace: str = "norway_bus_1"
    trace_scale: float = 8.0  # the 3G trace sped up to a 4G-like uplink (2-38 Mbit/s)
    rtt_s: float = 0.02
    duration_s: float = 50.0
    slowdown: float = 30.0  # the edge, halfway through
    max_frames: int = 1000


@dataclass
class DemoRun:
    config: DemoConfig
    records: dict[str, list[FrameRecord]] = field(default_factory=dict)
    slowdown_at_s: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for name, records in self.records.items():
            half = [r for r in records if r.started_s >= self.slowdown_at_s]
            rows.append({"policy": name, **{k: v for k, v in summary(records).items()
                                            if k in ("frames", "offloaded", "fallbacks",
                                                     "mean_latency_s")},
                         "after_slowdown_s": float(np.mean([r.total_s for r in half]))
                         if half else float("nan")})  # fmt: skip
        return rows

    def plot(self, path: Path) -> Path:
        fig, ax = new_figure(width=8.0)
        for name, records in self.records.items():
            t = [r.started_s for r in records]
            ax.plot(t, [r.total_s for r in records], lw=1, label=name)
        ax.axvline(self.slowdown_at_s, color="grey", ls="--", lw=0.8)
        label = f" edge {self.config.slowdown:g}x slower"
        ax.text(self.slowdown_at_s, ax.get_ylim()[1] * 0.95, label, fontsize=8, va="top")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frame latency (s)")
        ax.set_title(f"{self.config.model}, device {self.config.device}, link {self.config.trace} "
                     f"x{self.config.trace_scale:g}")  # fmt: skip
        ax.legend(fontsize=8)
        return save_figure(fig, path)


async def _run_all(
    config: DemoConfig,
    servers: list[ProcessServer],
    on_frame: Callable[[str, FrameRecord], None] | None,
) -> DemoRun:
    live = load_model(config.model)
    profile: list[dict[str, float]] = []

    def host_profile() -> dict[str, float]:
        if not profile:
            profile.append(profile_ops(live.part, live.inputs))
        return profile[0]

    device = resolve_device(config.device, host_profile)
    host = resolve_device("host", host_profile)
    front = emulated_front_seconds(live.part, device, host)
    link = Link(TraceBandwidth.from_file(trace_path(config.trace), scale=config.trace_scale),
                config.rtt_s)  # fmt: skip
    inputs, weights = video_inputs(live, config.max_frames)
    token = servers[0].options["token"]
    settle_heap()  # the devices' model and frames are ready: no collection walks them again
    run = DemoRun(config)
    start = time.monotonic()
    run.slowdown_at_s = config.duration_s / 2

    async def device_loop(name: str, server: ProcessServer) -> None:
        policy = make_live_policy(name, live.part, front, device, host, link)
        client = DeviceClient(config.model, live.part, front, server.address, link,
                              token=token, edge_timeout_s=5.0)  # fmt: skip

        def record(frame: FrameRecord) -> None:
            run.records[name].append(frame)
            if on_frame is not None:
                on_frame(name, frame)

        run.records[name] = []
        await client.run(policy, inputs, weights, record, start, config.duration_s)

    async def slow_down() -> None:
        await asyncio.sleep(run.slowdown_at_s)
        for server in servers:  # over the wire, as an operator would
            await set_edge_slowdown(server.address, config.slowdown, token)

    await asyncio.gather(
        slow_down(), *(device_loop(n, s) for n, s in zip(POLICIES, servers, strict=True))
    )
    return run


def run_demo(
    config: DemoConfig, on_frame: Callable[[str, FrameRecord], None] | None = None
) -> DemoRun:
    # one edge each, each in its own process (as a real edge would be: no GIL shared)
    configure_host()  # the devices' process; each server configures its own
    # CONTROL needs the token: a fresh one per demo, known only to its own processes
    token = secrets.token_urlsafe(16)
    servers = [ProcessServer(zoo_store, (config.model,), token=token) for _ in POLICIES]
    for server in servers:  # start all, then wait: they load their models in parallel
        server.start()
    for server in servers:
        server.wait_ready()
    try:
        return asyncio.run(_run_all(config, servers, on_frame))
    finally:
        for server in servers:
            server.stop()
