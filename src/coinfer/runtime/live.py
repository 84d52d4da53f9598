"""Wiring a live run: the device's model and policy, its frames, and an edge server in the
background (for `coinfer demo` and tests; `coinfer serve` runs one in the foreground)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from coinfer import zoo
from coinfer.graph.partition import Partitioning, partition
from coinfer.latency.devices import DeviceModel
from coinfer.latency.host import configure_host, settle_heap
from coinfer.latency.link import Link
from coinfer.policies.bandits import LinUCB, MuLinUCB
from coinfer.policies.neurosurgeon import Neurosurgeon
from coinfer.policies.static import static_policy
from coinfer.policies.types import Policy
from coinfer.runtime.server import EdgeServer
from coinfer.runtime.store import ModelStore
from coinfer.video import SyntheticScene, key_frame_weights

LIVE_POLICIES = ("mulinucb-link", "mulinucb", "mulinucb-discounted", "linucb", "neurosurgeon",
                 "edge-only", "device-only")  # fmt: skip


def make_live_policy(
    name: str,
    part: Partitioning,
    front_s: Sequence[float],
    device: DeviceModel,
    edge: DeviceModel,
    link: Link,
) -> Policy:
    """A policy that knows what a device would: its own front times, and for Neurosurgeon the
    profiled models of both sides and the link's rate at the start. The learners' delay unit
    is 1/50 of the device's own whole-model time (0.1 s for a ~5 s device, as in the
    simulator): exploration then means the same on a fast device as on a slow one."""
    unit = max(front_s[-1] / 50, 1e-4)
    if (fixed := static_policy(name, part.last)) is not None:
        return fixed
    if name == "neurosurgeon":
        return Neurosurgeon(part, device, edge, link.uplink.at(0.0), rtt_s=link.rtt_s)
    if name == "linucb":
        return LinUCB(part.cuts, front_s, delay_unit_s=unit)
    if name == "mulinucb":
        return MuLinUCB(part.cuts, front_s, delay_unit_s=unit)
    if name == "mulinucb-discounted":
        return MuLinUCB(part.cuts, front_s, discount=0.99, delay_unit_s=unit)
    if name == "mulinucb-link":
        return MuLinUCB(part.cuts, front_s, discount=0.99, delay_unit_s=unit, link_feature=True)
    raise ValueError(f"unknown policy {name!r}: choose from {', '.join(LIVE_POLICIES)}, fixed-K")


@dataclass
class LiveModel:
    name: str
    part: Partitioning
    inputs: tuple[torch.Tensor, ...]


def load_model(name: str, input_shapes: Sequence[tuple[int, ...]] | None = None) -> LiveModel:
    shapes = tuple(input_shapes) if input_shapes else None
    inputs = zoo.example_inputs(name, shapes=shapes)
    return LiveModel(name, partition(zoo.create(name), inputs), inputs)


def video_inputs(
    model: LiveModel, frames: int, seed: int = 0
) -> tuple[list[tuple[torch.Tensor, ...]], list[float]]:
    """``frames`` frames of a synthetic scene resized to the model's input, and their
    key-frame weights (SSIM < 0.8)."""
    (example,) = model.inputs
    scene = list(SyntheticScene(seed).frames(frames))
    weights, _ = key_frame_weights(scene)
    out: list[tuple[torch.Tensor, ...]] = []
    for image in scene:
        x = torch.from_numpy(np.ascontiguousarray(image)).float().permute(2, 0, 1)[None] / 255.0
        x = F.interpolate(x, size=tuple(example.shape[-2:]), mode="bilinear", align_corners=False)
        out.append((x[:, : example.shape[1]].contiguous(),))
    return out, weights


class BackgroundServer:
    """An EdgeServer on its own event loop in a thread: ``with BackgroundServer(...) as s:``
    gives ``s.address`` (tests use it; a real edge runs in its own process: ProcessServer)."""

    def __init__(self, store: ModelStore, **options: object) -> None:
        self.server = EdgeServer(store, **options)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop)
        self.address = future.result(timeout=30)
        return self

    def stop(self) -> None:
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--edge must be HOST:PORT (e.g. 127.0.0.1:8765), got {text!r}")
    return host, int(port)


async def serve_until_signalled(server: EdgeServer, host: str, port: int, announce: object) -> None:
    """Serve until SIGINT or SIGTERM, then close gracefully (requests in progress finish)."""
    import signal

    address = await server.start(host, port)
    settle_heap()  # the models are loaded: no collection need walk them again
    if callable(announce):
        announce(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def _serve_in_child(
    make_store: Callable[..., ModelStore],
    args: tuple[Any, ...],
    options: dict[str, Any],
    ready: Any,  # the sending end of a multiprocessing Pipe
) -> None:
    configure_host()  # steady timings: fixed threads, an allocator that keeps its memory

    async def main() -> None:
        server = EdgeServer(make_store(*args), **options)
        await serve_until_signalled(server, "127.0.0.1", 0, ready.send)

    asyncio.run(main())


def zoo_store(*models: str) -> ModelStore:
    return ModelStore(list(models))


class ProcessServer:
    """An EdgeServer in its own process, as a real edge would be: no GIL shared with the
    devices. The process is spawned (not forked: torch's thread pools do not survive a fork)
    and builds its models with ``make_store(*args)``, a module-level function.
    ``with ProcessServer(zoo_store, ("vgg16",)) as s:`` gives ``s.address``."""

    def __init__(
        self,
        make_store: Callable[..., ModelStore] = zoo_store,
        args: tuple[Any, ...] = ("vgg16",),
        **options: Any,
    ) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._receive, send = ctx.Pipe(duplex=False)
        self.options = options
        self.process = ctx.Process(target=_serve_in_child, args=(make_store, args, options, send),
                                   daemon=True)  # fmt: skip
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    def __enter__(self) -> ProcessServer:
        self.start()
        return self.wait_ready()

    def start(self) -> None:
        self.process.start()

    def wait_ready(self) -> ProcessServer:
        if not self._receive.poll(120):
            self.process.terminate()
            raise RuntimeError("the edge server process did not start within 120 s")
        host, port = self._receive.recv()
        self.address = (str(host), int(port))
        return self

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM: the server closes gracefully
            self.process.join(timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.stop()
