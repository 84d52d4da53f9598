"""The edge server (`coinfer serve`): runs the back halves devices ask for, over asyncio TCP.

One connection per device; each message is answered in order on its connection, while other
connections are served concurrently. Back halves run on one worker thread — the edge is one
processor, requests queue for it — so the event loop keeps reading, refusing and answering
while a model runs. A request that is malformed gets an ERROR reply naming the problem and the
connection stays open; when framing is lost (bad magic, oversized, a peer stalled mid-message)
the connection is closed. Nothing one client sends can stop the server serving the others.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from coinfer import zoo
from coinfer.graph.partition import Partitioning, partition
from coinfer.runtime.framing import FramedConnection
from coinfer.runtime.protocol import (
    ErrorCode,
    Kind,
    Limits,
    Message,
    ProtocolError,
    decode_tensors,
    encode_tensors,
    error_message,
    pack,
    tensors_of,
)


@dataclass
class BackHalf:
    module: torch.nn.Module
    expected: list[tuple[tuple[int, ...], torch.dtype]]  # the boundary the front produces


class ModelStore:
    """The models a server runs (by zoo name or ``module:factory``) and an LRU of back halves
    per (model, cut). Weights come from the seeded zoo initialisation, as on the device."""

    def __init__(
        self,
        specs: Sequence[str],
        input_shapes: Sequence[tuple[int, ...]] | None = None,
        cache_size: int = 32,
    ) -> None:
        if not specs:
            raise ValueError("serve at least one model: --model vgg16 (repeatable)")
        self.parts: dict[str, Partitioning] = {}
        self.inputs: dict[str, tuple[torch.Tensor, ...]] = {}
        for spec in specs:
            shapes = tuple(input_shapes) if input_shapes and ":" in spec else None
            inputs = zoo.example_inputs(spec, shapes=shapes)
            self.parts[spec] = partition(zoo.create(spec), inputs)
            self.inputs[spec] = inputs
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], BackHalf] = OrderedDict()

    @classmethod
    def of(cls, models: dict[str, tuple[Partitioning, tuple[torch.Tensor, ...]]]) -> ModelStore:
        """A store of models already partitioned (a user's own, or benchmarks')."""
        store = cls.__new__(cls)
        store.parts = {name: part for name, (part, _) in models.items()}
        store.inputs = {name: inputs for name, (_, inputs) in models.items()}
        store.cache_size = 32
        store._cache = OrderedDict()
        return store

    def part(self, model: str) -> Partitioning:
        if model not in self.parts:
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL,
                                f"model {model!r} is not served here (serving: "
                                f"{', '.join(self.parts)})")  # fmt: skip
        return self.parts[model]

    def back(self, model: str, cut: int) -> BackHalf:
        part = self.part(model)
        if not isinstance(cut, int) or isinstance(cut, bool) or not 0 <= cut < part.last:
            raise ProtocolError(ErrorCode.BAD_CUT,
                                f"cut {cut!r} of {model!r} must be in 0..{part.last - 1} "
                                f"(cut {part.last} runs everything on the device)")  # fmt: skip
        key = (model, cut)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        front, back = part.split(cut)
        with torch.no_grad():
            boundary = front(*self.inputs[model])
        half = BackHalf(back.eval(), [(tuple(t.shape), t.dtype) for t in boundary])
        self._cache[key] = half
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return half


@dataclass
class ServerStats:
    started: float = field(default_factory=time.monotonic)
    connections: int = 0
    requests: int = 0
    batches: int = 0
    batched_requests: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    edge_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=10_000)
    )
    handle_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=10_000)
    )

    def summary(self) -> dict[str, Any]:
        def pct(values: collections.deque[float]) -> dict[str, float]:
            if not values:
                return {}
            arr = np.fromiter(values, dtype=float)
            return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 95, 99)}

        return {
            "uptime_s": time.monotonic() - self.started,
            "connections": self.connections,
            "requests": self.requests,
            "errors": dict(self.errors),
            "batches": self.batches,
            "batched_requests": self.batched_requests,
            "edge_s": pct(self.edge_s),
            "handle_s": pct(self.handle_s),
        }


@dataclass
class _Pending:
    tensors: list[torch.Tensor]
    future: asyncio.Future[tuple[list[torch.Tensor], float]]


class EdgeServer:
    """``await start()``, then serve until ``close()`` (or a signal, via ``serve()``)."""

    def __init__(
        self,
        store: ModelStore,
        slowdown: float = 1.0,
        token: str | None = None,
        limits: Limits | None = None,
        read_timeout_s: float = 10.0,
        batch_window_s: float = 0.0,
        allow_control: bool = True,
    ) -> None:
        self.store = store
        self.set_slowdown(slowdown)
        self.token = token
        self.limits = limits or Limits()
        self.read_timeout_s = read_timeout_s
        self.batch_window_s = batch_window_s
        self.allow_control = allow_control
        self.stats = ServerStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge")
        self._server: asyncio.Server | None = None
        self._pending: dict[tuple[str, int], list[_Pending]] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._busy = 0  # requests being answered right now

    def set_slowdown(self, factor: float) -> None:
        """Emulate an edge ``factor`` times slower than this host (the compute, then a wait)."""
        if not factor >= 1.0:
            raise ValueError(f"the edge slowdown must be >= 1 (1 = this host), got {factor}")
        self.slowdown = float(factor)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: FramedConnection(self.limits, self.read_timeout_s, self._on_connect), host, port
        )
        sock = self._server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish (up to ``grace_s``), then close
        every connection."""
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + grace_s
        while self._busy and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._executor.shutdown(wait=True)

    def _on_connect(self, conn: FramedConnection) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, conn: FramedConnection) -> None:
        """Answer one connection's messages in order until it ends or framing is lost."""
        self.stats.connections += 1
        try:
            while True:
                item = await conn.next()
                if item is None:
                    break
                request_id: Any = None
                try:
                    if isinstance(item, ProtocolError):
                        raise item
                    request_id = item.header.get("id")
                    self._busy += 1
                    try:
                        reply = await self._dispatch(item)
                    except (ProtocolError, asyncio.CancelledError):
                        raise
                    except Exception as exc:  # a bug of ours: tell the peer, keep serving
                        text = f"{type(exc).__name__}: {exc}"
                        raise ProtocolError(ErrorCode.INTERNAL, text) from exc
                    finally:
                        self._busy -= 1
                except ProtocolError as exc:
                    self.stats.errors[exc.code.name] += 1
                    await conn.write(error_message(request_id, exc))
                    if exc.fatal:
                        conn.finish()  # the error reaches the peer, then the connection ends
                        return
                    continue
                await conn.write(reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        conn.close()

    def _check_token(self, header: dict[str, Any]) -> None:
        if self.token is None:
            return
        given = header.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(given, self.token):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "missing or wrong auth token (--token)")

    async def _dispatch(self, msg: Message) -> bytes:
        header = msg.header
        if msg.kind is Kind.PING:
            return pack(Kind.PONG, {"id": header.get("id")})
        self._check_token(header)
        if msg.kind is Kind.STATS:
            return pack(Kind.RESULT, {"id": header.get("id"), "stats": self.stats.summary(),
                                      "slowdown": self.slowdown})  # fmt: skip
        if msg.kind is Kind.CONTROL:
            if not self.allow_control:
                raise ProtocolError(ErrorCode.UNSUPPORTED, "this server does not take CONTROL")
            try:
                self.set_slowdown(float(header["slowdown"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ProtocolError(
                    ErrorCode.BAD_HEADER, f"CONTROL needs slowdown >= 1: {exc}"
                ) from None
            return pack(Kind.RESULT, {"id": header.get("id"), "slowdown": self.slowdown})
        if msg.kind is not Kind.INFER:
            raise ProtocolError(ErrorCode.UNSUPPORTED, f"the edge does not take {msg.kind.name}")
        return await self._infer(msg)

    async def _infer(self, msg: Message) -> bytes:
        start = time.perf_counter()
        header = msg.header
        model, cut = header.get("model"), header.get("cut")
        if not isinstance(model, str):
            raise ProtocolError(ErrorCode.BAD_HEADER, "INFER needs 'model' (a string)")
        half = self.store.back(model, cut)  # type: ignore[arg-type]
        tensors = decode_tensors(header.get("tensors"), msg.payload, self.limits)
        got = [(tuple(t.shape), t.dtype) for t in tensors]
        if got != half.expected:
            want = ", ".join(f"{list(s)} {str(d).removeprefix('torch.')}" for s, d in half.expected)
            have = ", ".join(f"{list(s)} {str(d).removeprefix('torch.')}" for s, d in got) or "none"
            raise ProtocolError(ErrorCode.BAD_TENSOR,
                                f"cut {cut} of {model!r} takes {want}; got {have}")  # fmt: skip
        self.stats.requests += 1
        outputs, compute_s = await self._run(model, cut, half, tensors)  # type: ignore[arg-type]
        edge_s = compute_s * self.slowdown
        if self.slowdown > 1.0:  # the emulated slower edge: wait out the difference
            await asyncio.sleep(edge_s - compute_s)
        metas, payload = encode_tensors(outputs)
        self.stats.edge_s.append(edge_s)
        self.stats.handle_s.append(time.perf_counter() - start)
        return pack(Kind.RESULT, {"id": header.get("id"), "edge_s": edge_s, "tensors": metas},
                    payload)  # fmt: skip

    async def _run(
        self, model: str, cut: int, half: BackHalf, tensors: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], float]:
        if self.batch_window_s <= 0:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, _forward, half.module, [tensors]
            )
        key = (model, cut)
        future: asyncio.Future[tuple[list[torch.Tensor], float]] = (
            asyncio.get_running_loop().create_future()
        )
        queue = self._pending.setdefault(key, [])
        queue.append(_Pending(tensors, future))
        if len(queue) == 1:
            asyncio.get_running_loop().call_later(
                self.batch_window_s, lambda: asyncio.ensure_future(self._flush(key, half))
            )
        return await future

    async def _flush(self, key: tuple[str, int], half: BackHalf) -> None:
        batch = self._pending.pop(key, [])
        if not batch:
            return
        self.stats.batches += 1
        self.stats.batched_requests += len(batch)
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._executor, _forward_batch, half.module, [p.tensors for p in batch]
            )
        except Exception as exc:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(
                        ProtocolError(ErrorCode.INTERNAL, f"the back half raised: {exc}")
                    )
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)


def _forward(
    module: torch.nn.Module, batch: list[list[torch.Tensor]]
) -> tuple[list[torch.Tensor], float]:
    start = time.perf_counter()
    try:
        with torch.no_grad():
            out = tensors_of(module(*batch[0]))
    except Exception as exc:  # the back half raised, or returned something not tensors
        raise ProtocolError(ErrorCode.INTERNAL, f"the back half raised: {exc}") from None
    return out, time.perf_counter() - start


def _forward_batch(
    module: torch.nn.Module, requests: list[list[torch.Tensor]]
) -> list[tuple[list[torch.Tensor], float]]:
    """One forward for several requests (stacked on the batch dimension), each getting its
    slice of the outputs and the whole batch's time: what it waited on the edge."""
    if len(requests) == 1:
        return [_forward(module, requests)]
    start = time.perf_counter()
    stacked = [torch.cat(parts, dim=0) for parts in zip(*requests, strict=True)]
    with torch.no_grad():
        outputs = tensors_of(module(*stacked))
    elapsed = time.perf_counter() - start
    sizes = [r[0].shape[0] for r in requests]
    split = [torch.split(o, sizes, dim=0) for o in outputs]
    return [([s[i] for s in split], elapsed) for i in range(len(requests))]
