"""Wiring a live run: the device's frames and client, and an edge server in the background
(for `coinfer demo` and tests; `coinfer serve` runs one in the foreground)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from coinfer import zoo
from coinfer.latency.host import configure_host, settle_heap
from coinfer.latency.link import Link
from coinfer.policies.setup import DeviceSetup, ModelSetup
from coinfer.runtime.client import DeviceClient
from coinfer.runtime.server import EdgeServer
from coinfer.runtime.store import ModelStore
from coinfer.video import SyntheticScene, key_frame_weights


def video_inputs(
    model: ModelSetup, frames: int, seed: int = 0
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


@dataclass
class Frames:
    """What a live device runs: input frames, their key-frame weights, and labels where the
    frames are labelled data (then every answer is checked)."""

    inputs: list[tuple[torch.Tensor, ...]]
    key_weights: list[float]
    labels: list[int] | None = None


def live_frames(model: ModelSetup, frames: int, seed: int = 0) -> Frames:
    """The held-out digits (labelled) for a model trained on them (branchy_alexnet), else a
    synthetic video resized to the model's input."""
    if zoo.ships_weights(model.name):
        from coinfer.zoo.training import held_out, held_out_order

        images, labels = held_out()
        order = held_out_order(frames, seed)
        return Frames([(images[i : i + 1].contiguous(),) for i in order], [0.2] * frames,
                      [int(labels[i]) for i in order])  # fmt: skip
    inputs, weights = video_inputs(model, frames, seed)
    return Frames(inputs, weights)


def device_client(
    setup: DeviceSetup,
    edge: tuple[str, int] | None,
    link: Link | None,
    **options: Any,
) -> DeviceClient:
    """The device client of ``setup`` (every exit's path too) for the edge at ``edge``."""
    return DeviceClient(setup.model.name, setup.model.part, setup.front_s, edge, link,
                        exits=setup.exit_halves(), **options)  # fmt: skip


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
