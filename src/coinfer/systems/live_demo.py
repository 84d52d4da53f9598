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
from coinfer.report import legend_beside, log_axis, new_figure, save_figure
from coinfer.systems.base import DemoHooks, DemoRun

LOADED_RATIO = 1.5  # the model this much slower than when profiled: the host is busy
BAND_OFFSET = 0.25  # how far apart two baselines that always choose the same are drawn


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
    net = model.torch_net
    with torch.no_grad():
        net(*model.inputs)  # warm
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net(*model.inputs)
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
        run.policies[name] = policy

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
    """Latency per frame above (log scale: a 2x change looks the same at 0.2 s and at 3 s) and
    what each device chose below (``chosen``: the cut, or Edgent's exit), both over time since
    the start; ``mark`` draws the system's event. The system's own policy (the first) is drawn
    last, on top; a baseline that never changes its choice is one band, not dots over it."""
    fig, (top, bottom) = new_figure(width=8.0, height=3.0, rows=2, sharex=True)
    names = list(run.records)
    bands: list[int] = []
    for rank, name in reversed(list(enumerate(names))):
        records = run.records[name]
        if not records:
            continue
        colour, layer = f"C{rank}", 3 if rank == 0 else 2
        sparse = len(records) < 60
        times = [r.started_s for r in records]
        top.plot(
            times,
            [r.total_s for r in records],
            lw=1.2 if rank == 0 else 0.8,
            marker="." if sparse else None,
            ls=":" if sparse else "-",
            color=colour,
            label=name,
            zorder=layer,
        )
        values = [chosen(r) for r in records]
        if len(set(values)) == 1:
            shared = bands.count(values[0])  # bands at one value are drawn a little apart
            bands.append(values[0])
            offloads = sum(r.offloaded for r in records)
            where = {0: "on the device", len(records): "offloaded"}.get(offloads, "mixed")
            bottom.plot(
                [times[0], times[-1]],
                [values[0] + BAND_OFFSET * shared] * 2,
                lw=5,
                alpha=0.45,
                color=colour,
                label=f"{name}: always {values[0]} ({where})",
                solid_capstyle="butt",
            )
            continue
        for offloaded in (True, False):
            picked = [
                (t, v)
                for t, v, r in zip(times, values, records, strict=True)
                if r.offloaded == offloaded
            ]
            if picked:
                xs, ys = zip(*picked, strict=True)
                bottom.plot(
                    xs,
                    ys,
                    "o",
                    ms=3.5,
                    color=colour,
                    zorder=layer,
                    markerfacecolor=colour if offloaded else "none",
                    label=f"{name} ({'offloaded' if offloaded else 'on the device'})",
                )
    mark(top, bottom)
    log_axis(top)
    top.set_ylabel("frame latency (s)")
    bottom.set_ylabel(chosen_label)
    bottom.set_xlabel("time since start (s)")
    top.set_title(
        f"{run.setting('model')}, device {run.setting('device')}, link "
        f"{run.config.trace} x{run.setting('trace_scale'):g}"
    )
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        legend_beside(ax, fontsize=8)
    return save_figure(fig, path)
