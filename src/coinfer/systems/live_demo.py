"""What the live demos share: the device profiled first, edge servers in processes of their own
with a fresh token, a warning when the host is too busy to tell, devices side by side on one
event loop (each with its own edge and its own copy of the link), and the plot of their frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coinfer.assembly import DeviceSetup, assemble
from coinfer.device.client import DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.inputs import Frames
from coinfer.device.live_env import run_live_env
from coinfer.device.records import FrameRecord, summary
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import ProcessServer, zoo_store
from coinfer.latency.devices import MeasuredDevice, ScaledDevice
from coinfer.latency.host import configure_host, settle_heap
from coinfer.latency.link import Link
from coinfer.policies import registry
from coinfer.policies.registry import Knowledge
from coinfer.report import new_figure, save_figure
from coinfer.systems.base import DemoHooks, DemoRun

LOADED_RATIO = 1.5  # the model this much slower than when profiled: the host is busy


def demo_setup(model: str, device: str) -> DeviceSetup:
    """The demo's device, profiled before anything else starts (servers loading their models
    beside the profile would make it look many times slower than it is); the edge is this host."""
    configure_host()  # the devices' process; each server configures its own
    return assemble(model, device, "host")


@contextlib.contextmanager
def edge_servers(model: str, count: int, **options: Any) -> Iterator[list[ProcessServer]]:
    """``count`` edge servers of ``model``, each in its own process (started together: they
    load their models in parallel), with one fresh token (CONTROL needs it) known only to the
    demo's own processes."""
    chosen = ServerOptions(token=secrets.token_urlsafe(16), **options)
    servers = [ProcessServer(zoo_store, (model,), chosen) for _ in range(count)]
    for server in servers:
        server.start()
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def endpoint(server: ProcessServer) -> Endpoint:
    return Endpoint(server.address, server.options.token)


def host_load(setup: DeviceSetup, repeats: int = 5) -> str | None:
    """A warning when this host now runs the model much slower than when it was profiled
    (another process using the cores): the emulated device is then slower than its class, and
    the story the demo tells may not hold."""
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


def side_by_side(
    run: DemoRun,
    setup: DeviceSetup,
    servers: list[ProcessServer],
    link: Link,
    data: Frames,
    knowledge: Knowledge,
    hooks: DemoHooks,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Every policy of the demo on its own edge, all on one event loop from the same moment
    (the link's time 0), for the demo's duration; ``meanwhile`` runs beside them (what the
    operator does halfway)."""
    settle_heap()  # the devices' model and frames are ready: no collection walks them again
    start = time.monotonic()

    async def device(name: str, server: ProcessServer) -> None:
        policy = registry.create(name, knowledge)
        client = DeviceClient.for_setup(setup, endpoint(server), link)
        run.records[name] = []

        def record(frame: FrameRecord) -> None:
            run.records[name].append(frame)
            hooks.frame(name, frame)

        env = await run_live_env(
            client,
            policy,
            data.inputs,
            data.key_weights,
            record,
            start,
            run.config.duration_s,
            labels=data.labels,
            monitor=registry.entry(name).watches_link,
        )
        run.correct[name] = env.correct

    async def everything() -> None:
        devices = [device(n, s) for n, s in zip(run.spec.devices, servers, strict=True)]
        await asyncio.gather(*devices, *([meanwhile()] if meanwhile else []))

    asyncio.run(everything())


def frame_rows(run: DemoRun) -> list[dict[str, Any]]:
    """Each device's frames, offloads, fallbacks and mean latency."""
    rows = []
    for name, records in run.records.items():
        done = summary(records)
        keep = ("frames", "offloaded", "fallbacks", "mean_latency_s")
        rows.append({"policy": name, **{k: done[k] for k in keep}})
    return rows


def frame_plot(
    run: DemoRun,
    path: Path,
    chosen: Callable[[FrameRecord], int],
    chosen_label: str,
    mark: Callable[[Any, Any], None],
) -> Path:
    """Latency per frame above and what each device chose below (``chosen``: the cut, or
    Edgent's exit), both over time since the start; ``mark`` draws the system's event."""
    fig, (top, bottom) = new_figure(width=8.0, height=3.0, rows=2, sharex=True)
    for name, records in run.records.items():
        sparse = len(records) < 60
        times = [r.started_s for r in records]
        top.plot(
            times,
            [r.total_s for r in records],
            lw=0.8,
            marker="." if sparse else None,
            ls=":" if sparse else "-",
            label=name,
        )
        bottom.plot(times, [chosen(r) for r in records], ".", ms=3, label=name)
    mark(top, bottom)
    top.set_ylim(bottom=0)
    top.set_ylabel("frame latency (s)")
    bottom.set_ylabel(chosen_label)
    bottom.set_xlabel("time since start (s)")
    top.set_title(
        f"{run.setting('model')}, device {run.setting('device')}, link "
        f"{run.config.trace} x{run.setting('trace_scale'):g}"
    )
    top.legend(fontsize=8, loc="upper left")
    return save_figure(fig, path)
