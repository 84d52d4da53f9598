"""The CANS demo's devices: four device processes, one federated edge server, WLAN-class links.

A cooperating pair (``fedlinucb-dw``: one group on the edge, each warm-started from offline
experience it measured itself) and a non-cooperating pair (``noncoop``: μLinUCB alone) run the
same model on the same emulated device class against one ``coinfer serve --federation`` on
loopback, with DESIGN's 7-feature learner (the one cooperation matters for: docs/cans.md). Each
pair's i-th device replays the same stretch of link — the fleet's WLAN class, the shipped 3G
traces ×8 — so the pairs differ only in how they learn. Before the run each cooperating device
measures its experience live: its model split at the input and at each exit in turn, on the
stretch of its link half a loop earlier. Beside the live result, the fleet simulator runs the
same two-device world for as many frames (``systems.cans.fleet.simulate_pairs``): the two
should agree in direction.
"""

from __future__ import annotations

import multiprocessing
import queue as queues
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coinfer.defaults import EDGE_CLASS
from coinfer.device.records import FrameRecord
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.systems.cans.worlds import NETWORKS, network_link, network_trace

WLAN = "wlan"
DEVICES = (
    ("coop-1", "fedlinucb-dw", 0),
    ("coop-2", "fedlinucb-dw", 1),
    ("alone-1", "noncoop", 0),
    ("alone-2", "noncoop", 1),
)
GROUP = "demo-pair"
EXPERIENCE_FRAMES = 12
READY_TIMEOUT_S = 300.0


@dataclass
class CansResult:
    """What the four devices did, what they exchanged, and the simulator's view."""

    records: dict[str, list[FrameRecord]] = field(default_factory=dict)
    federation: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    groups: dict[str, Any] = field(default_factory=dict)  # the edge's STATS
    starts: list[float] = field(default_factory=list)  # where each pair position's link starts


def offsets(seed: int, trace: TraceBandwidth) -> list[float]:
    """Where in the WLAN loop each pair position starts (pair members share it)."""
    rng = np.random.default_rng(seed)
    return [float(rng.uniform(0, trace.period)) for _ in range(2)]


def demo_link(offset: float) -> Link:
    """A WLAN-class link heard from ``offset`` into its loop."""
    return network_link(NETWORKS[WLAN], offset)


def _measure_experience(setup: Any, edge: Any, offset: float) -> Any:
    """Offline experience, for real: the model split at the input and each exit in turn on
    the link half a loop earlier."""
    from coinfer.device.client import DeviceClient
    from coinfer.device.inputs import live_frames
    from coinfer.device.live_env import LiveEnv
    from coinfer.policies.experience import collect_experience, exit_cuts

    trace = demo_link(0.0).uplink
    assert isinstance(trace, TraceBandwidth)
    earlier = demo_link(offset + trace.period / 2)
    client = DeviceClient.for_setup(setup, edge, earlier)
    data = live_frames(setup.model, EXPERIENCE_FRAMES)
    with LiveEnv(client, data.inputs, data.key_weights) as env:
        return collect_experience(
            env,
            (0, *exit_cuts(setup.model.part)),
            EXPERIENCE_FRAMES,
            setup.model.name,
            setup.device_name,
            "this edge",
            "measured live, half a WLAN loop earlier",
        )


def _device_main(
    name: str,
    policy: str,
    offset: float,
    model: str,
    device: str,
    address: tuple[str, int],
    token: str,
    duration_s: float,
    max_frames: int,
    events: Any,  # a multiprocessing Queue: ("stage"|"ready"|"frame"|"done"|"error", name, ...)
    go: Any,  # a multiprocessing Event: every device starts at once
) -> None:
    from coinfer.assembly import assemble
    from coinfer.device.endpoint import Endpoint
    from coinfer.device.inputs import live_frames
    from coinfer.device.session import run_frames
    from coinfer.latency.host import configure_host
    from coinfer.systems.base import LiveRequest
    from coinfer.systems.cans.live import prepare

    try:
        configure_host()
        setup = assemble(model, device, EDGE_CLASS)
        edge = Endpoint(address, token)
        cooperating = policy != "noncoop"
        experience = None
        if cooperating:
            events.put(
                (
                    "stage",
                    name,
                    f"measuring its experience ({EXPERIENCE_FRAMES} frames "
                    "at the input and the exits)",
                )
            )
            experience = _measure_experience(setup, edge, offset)
        request = LiveRequest(
            group=GROUP if cooperating else None, experience=experience, link_feature=False
        )
        prep = prepare(setup, policy, edge, request)
        data = live_frames(setup.model, max_frames)
        measured = f", {len(experience.records)} experience records" if experience else ""
        events.put(("ready", name, f"ready ({policy}{measured})"))
        go.wait()
        run = run_frames(
            setup,
            policy,
            max_frames,
            demo_link(offset),
            edge,
            data=data,
            fields=prep.fields,
            group=prep.group,
            duration_s=duration_s,
            on_frame=lambda r: events.put(("frame", name, r)),
        )
        events.put(("done", name, run.summary.get("federation")))
    except Exception as exc:  # told to the demo, which names it; the others go on
        events.put(("error", name, f"{type(exc).__name__}: {exc}"))


def run_cans(
    model: str,
    device: str,
    duration_s: float,
    max_frames: int,
    seed: int = 0,
    on_frame: Callable[[str, FrameRecord], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> CansResult:
    """The four devices against one federated edge; every frame reported as it comes, and
    what each device is doing before its first frame (the warm-up takes a while)."""
    import asyncio
    import secrets

    from coinfer.device.endpoint import Endpoint
    from coinfer.device.requests import edge_stats
    from coinfer.edge.options import ServerOptions
    from coinfer.edge.process import ProcessServer, zoo_store

    token = secrets.token_urlsafe(16)
    result = CansResult({name: [] for name, _, _ in DEVICES})
    starts = offsets(seed, network_trace(NETWORKS[WLAN].trace_scale))
    options = ServerOptions(token=token, federation=True)
    with ProcessServer(zoo_store, (model,), options) as server:
        ctx = multiprocessing.get_context("spawn")
        events = ctx.Queue()
        go = ctx.Event()
        procs = [
            ctx.Process(
                target=_device_main,
                args=(
                    name,
                    policy,
                    starts[slot],
                    model,
                    device,
                    server.address,
                    token,
                    duration_s,
                    max_frames,
                    events,
                    go,
                ),
                daemon=True,
            )
            for name, policy, slot in DEVICES
        ]
        for proc in procs:
            proc.start()
        try:
            _collect(events, go, result, duration_s, on_frame, on_stage)
            stats = asyncio.run(edge_stats(Endpoint(server.address, token)))
            result.groups = stats.get("groups", {})
        finally:
            for proc in procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
    result.starts = starts
    return result


def _collect(
    events: Any,
    go: Any,
    result: CansResult,
    duration_s: float,
    on_frame: Callable[[str, FrameRecord], None] | None,
    on_stage: Callable[[str], None] | None,
) -> None:
    """Every device ready, then all at once; their frames until each is done."""
    waiting = {name for name, _, _ in DEVICES}
    ready: set[str] = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while waiting:
        if not go.is_set() and (ready | set(result.errors)) >= waiting:
            go.set()
            if on_stage is not None:
                on_stage(f"all {len(DEVICES)} devices ready: {duration_s:g} s of frames")
            deadline = time.monotonic() + duration_s + 120.0
        try:
            kind, name, value = events.get(timeout=max(0.1, deadline - time.monotonic()))
        except queues.Empty:
            for name in waiting:
                result.errors.setdefault(name, "it did not finish in time")
            return
        if kind == "stage":
            if on_stage is not None:
                on_stage(f"{name}: {value}")
        elif kind == "ready":
            ready.add(name)
            if on_stage is not None:
                on_stage(f"{name}: {value}")
        elif kind == "frame":
            result.records[name].append(value)
            if on_frame is not None:
                on_frame(name, value)
        else:
            waiting.discard(name)
            if kind == "error":
                result.errors[name] = value
                ready.discard(name)
            elif value is not None:
                result.federation[name] = value
        if time.monotonic() > deadline:
            for name in waiting:
                result.errors.setdefault(name, "it did not finish in time")
            return
