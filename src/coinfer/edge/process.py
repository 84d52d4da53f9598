"""An edge server run for someone else: until a signal (``coinfer serve``), on a thread of its own
(tests), or in a process of its own, as a real edge would be (the demos, benchmarks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from coinfer.edge.options import ServerOptions
from coinfer.edge.server import EdgeServer
from coinfer.edge.store import ModelStore
from coinfer.latency.host import configure_host, settle_heap


class BackgroundServer:
    """An EdgeServer on its own event loop in a thread: ``with BackgroundServer(...) as s:``
    gives ``s.address`` (tests use it; a real edge runs in its own process: ProcessServer)."""

    def __init__(self, store: ModelStore, options: ServerOptions | None = None) -> None:
        self.server = EdgeServer(store, options)
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
    options: ServerOptions,
    ready: Any,  # the sending end of a multiprocessing Pipe
) -> None:
    configure_host()  # steady timings: fixed threads, an allocator that keeps its memory

    async def main() -> None:
        server = EdgeServer(make_store(*args), options)
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
        options: ServerOptions | None = None,
    ) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._receive, send = ctx.Pipe(duplex=False)
        self.options = options = options or ServerOptions()
        self.process = ctx.Process(
            target=_serve_in_child, args=(make_store, args, options, send), daemon=True
        )
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
