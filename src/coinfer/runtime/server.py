"""The edge server (`coinfer serve`): runs the back halves devices ask for, over asyncio TCP.

One connection per device; its messages are read and answered one at a time, while other
connections are served concurrently. Back halves run on one worker thread — the edge is one
processor, requests queue for it — so the event loop keeps reading, refusing and answering
while a model runs; decompression and dequantisation run on a second thread. Everything a peer
can make the server hold is reserved from one memory budget first, and every connection has a
deadline in every state (docs/security.md): nothing one client sends can stop the server
serving the others.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from coinfer.latency.host import release_free_memory
from coinfer.output import percentile
from coinfer.runtime.budget import DEFAULT_BUDGET_BYTES, MemoryBudget
from coinfer.runtime.federation import DEFAULT_MAX_GROUPS, GroupStore, parse_sync
from coinfer.runtime.framing import (
    SCRATCH_BYTES,
    Admission,
    Deadlines,
    FramedConnection,
    MessageParser,
    Request,
)
from coinfer.runtime.protocol import (
    ErrorCode,
    Kind,
    Limits,
    ProtocolError,
    error_message,
    pack,
)
from coinfer.runtime.security import TokenCheck, check_exposure, check_token, server_tls
from coinfer.runtime.store import ModelStore, forward, forward_batch
from coinfer.runtime.tensors import (
    WireTensor,
    check_tensors,
    decode,
    decode_bytes,
    encode_tensors,
    payload_bytes,
)

log = logging.getLogger("coinfer.serve")

MAX_SLOWDOWN = 1000.0  # the emulated edge may be at most this many times slower than this host
DEFAULT_MAX_CONNECTIONS = 512
FD_RESERVE = 64  # file descriptors kept for the server's own files, threads and models
LOG_REPEAT_S = 10.0  # the same loop error is logged at most once in this long


def check_slowdown(value: object) -> float:
    """A slowdown factor: a finite number in [1, MAX_SLOWDOWN] (ValueError otherwise)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"the slowdown must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and 1.0 <= value <= MAX_SLOWDOWN):
        raise ValueError(f"the slowdown must be in [1, {MAX_SLOWDOWN:g}] (1 = this host), "
                         f"got {value!r}")  # fmt: skip
    return float(value)


@dataclass
class ServerStats:
    started: float = field(default_factory=time.monotonic)
    connections: int = 0
    requests: int = 0
    batches: int = 0
    batched_requests: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    # idle_closed, write_timeouts, read_timeouts, evicted, refused, loop_errors, trims
    events: collections.Counter[str] = field(default_factory=collections.Counter)
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
            ordered = list(values)
            return {f"p{q}": percentile(ordered, q) or 0.0 for q in (50, 95, 99)}

        return {
            "uptime_s": time.monotonic() - self.started,
            "connections": self.connections,
            "requests": self.requests,
            "errors": dict(self.errors),
            "events": dict(self.events),
            "batches": self.batches,
            "batched_requests": self.batched_requests,
            "edge_s": pct(self.edge_s),
            "handle_s": pct(self.handle_s),
        }


@dataclass(frozen=True)
class _Job:
    """A checked INFER: what to run, on which tensors, and what the reply may take."""

    model: str
    cut: int
    exit: int | None
    wires: list[WireTensor]


@dataclass
class _Pending:
    tensors: list[torch.Tensor]
    future: asyncio.Future[tuple[list[torch.Tensor], float]]


@dataclass(frozen=True)
class ServerOptions:
    """How an edge server guards itself; checked on creation, so a bad value is one clear
    error before any model is loaded.

    ``allow_control``: None (the default) takes CONTROL only from peers with the token, and
    refuses it on a server without one; True takes it from anyone the token admits; False
    never. ``insecure`` allows serving a non-loopback address without a token.
    """

    slowdown: float = 1.0
    token: str | None = None
    read_timeout_s: float = 10.0  # from a message's first byte to its last
    idle_timeout_s: float = 60.0
    write_timeout_s: float = 10.0
    batch_window_s: float = 0.0
    allow_control: bool | None = None
    max_buffer_bytes: int = DEFAULT_BUDGET_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    limits: Limits = field(default_factory=Limits)
    federation: bool = False  # keep federated learners' group statistics (SYNC)
    max_groups: int = DEFAULT_MAX_GROUPS

    def __post_init__(self) -> None:
        check_slowdown(self.slowdown)
        if self.token is not None:
            check_token(self.token)
        for name, value in (("read timeout", self.read_timeout_s),
                            ("idle timeout", self.idle_timeout_s),
                            ("write timeout", self.write_timeout_s)):  # fmt: skip
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"the {name} must be a positive number of seconds, got {value}")
        if not (math.isfinite(self.batch_window_s) and self.batch_window_s >= 0):
            raise ValueError(f"the batch window must be >= 0 s, got {self.batch_window_s}")
        if self.max_buffer_bytes < 1024 * 1024:
            raise ValueError(f"the memory budget must be at least 1 MiB, got "
                             f"{self.max_buffer_bytes} bytes")  # fmt: skip
        if self.max_connections < 1:
            raise ValueError(f"--max-connections must be at least 1, got {self.max_connections}")
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("--tls-key needs --tls-cert (the certificate it belongs to)")
        if self.tls_cert is not None:
            server_tls(self.tls_cert, self.tls_key)  # the files load, or a clear error now
        if self.max_groups < 1:
            raise ValueError(f"--max-groups must be at least 1, got {self.max_groups}")


class EdgeServer:
    """``await start()``, then serve until ``close()`` (or a signal, via ``serve()``).
    Configured by ``options`` or, the same, by its fields as keywords."""

    def __init__(self, store: ModelStore, options: ServerOptions | None = None,
                 **fields: Any) -> None:  # fmt: skip
        if options is not None and fields:
            raise TypeError("give ServerOptions or its fields, not both")
        self.options = options = options or ServerOptions(**fields)
        self.store = store
        self.set_slowdown(options.slowdown)
        self.tokens = TokenCheck(options.token)
        self.limits = options.limits
        self.deadlines = Deadlines(options.read_timeout_s, options.idle_timeout_s,
                                   options.write_timeout_s)  # fmt: skip
        self.batch_window_s = options.batch_window_s
        self.allow_control = options.allow_control
        self.insecure = options.insecure
        self.budget = MemoryBudget(options.max_buffer_bytes)
        self.notices: list[str] = []  # one-line warnings for whoever started the server
        self.max_connections = self._connection_cap(options.max_connections)
        self.tls = server_tls(options.tls_cert, options.tls_key) if options.tls_cert else None
        self.stats = ServerStats()
        self.groups = GroupStore(options.max_groups) if options.federation else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge")
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._server: asyncio.Server | None = None
        self._pending: dict[tuple[str, int, int | None], list[_Pending]] = {}
        self._open: dict[FramedConnection, asyncio.Task[None] | None] = {}
        self._scratch = bytearray(SCRATCH_BYTES)
        self._logged: dict[str, float] = {}
        self._busy = 0  # requests being answered right now

    @property
    def token_required(self) -> bool:
        return self.tokens.required

    def _connection_cap(self, wanted: int) -> int:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or wanted + FD_RESERVE <= soft:
            return wanted
        cap = soft - FD_RESERVE
        if cap < 1:
            raise ValueError(f"only {soft} file descriptors are allowed (ulimit -n): raise it "
                             f"above {FD_RESERVE}")  # fmt: skip
        self.notices.append(
            f"--max-connections {wanted} lowered to {cap}: ulimit -n is {soft}, and "
            f"{FD_RESERVE} descriptors are kept for the server itself"
        )
        return cap

    def set_slowdown(self, factor: float) -> None:
        """Emulate an edge ``factor`` times slower than this host (the compute, then a wait)."""
        self.slowdown = check_slowdown(factor)

    @property
    def control_allowed(self) -> bool:
        if self.allow_control is None:
            return self.tokens.required
        return self.allow_control

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        warning = check_exposure(host, self.tokens.required, self.insecure)
        if warning:
            self.notices.append(warning)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_error)
        self._server = await loop.create_server(
            self._new_connection,
            host,
            port,
            ssl=self.tls,
            ssl_handshake_timeout=self.deadlines.read_timeout_s if self.tls else None,
            backlog=min(1024, self.max_connections),
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
        tasks = [t for t in self._open.values() if t is not None]
        for conn in list(self._open):
            conn.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._executor.shutdown(wait=True)
        self._decoder.shutdown(wait=True)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """One line per kind of trouble (accept out of file descriptors, a peer's TLS...),
        at most every LOG_REPEAT_S, never a traceback: a flood cannot flood the log."""
        self.stats.events["loop_errors"] += 1
        message = str(context.get("message", "event loop error"))
        exc = context.get("exception")
        kind = f"{message.split('(')[0].split('<')[0]}{type(exc).__name__}"  # no reprs, no fds
        now = time.monotonic()
        if now - self._logged.get(kind, -math.inf) < LOG_REPEAT_S:
            return
        self._logged[kind] = now
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        log.warning("%s%s (the server keeps serving; repeats are counted, not logged, for %g s)",
                    message, detail, LOG_REPEAT_S)  # fmt: skip

    # -- connections
    def _new_connection(self) -> FramedConnection:
        parser = MessageParser(self.limits, self.budget, self._admit, self._scratch)
        return FramedConnection(parser, self.deadlines, self._on_made, self._on_lost,
                                self.stats.events, half_close=self.tls is None)  # fmt: skip

    def _on_made(self, conn: FramedConnection) -> None:
        if len(self._open) >= self.max_connections:
            idle = [c for c in self._open if c.idle]
            if not idle:  # everyone is mid-request: this one waits its turn elsewhere
                self.stats.events["refused"] += 1
                busy = ProtocolError(ErrorCode.BUSY, f"the server has {self.max_connections} "
                                     f"connections, all busy: try again later")  # fmt: skip
                conn.refuse(error_message(None, busy))
                return
            # room is made by the idle connection that never had a request admitted (a hoarder),
            # else by the longest idle: a device between frames is the last to go
            victim = min(idle, key=lambda c: (c.proven, c.last_active))
            self._open.pop(victim, None)
            self.stats.events["evicted"] += 1
            victim.close()
        self.stats.connections += 1
        task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._open[conn] = task

    def _on_lost(self, conn: FramedConnection) -> None:
        self._open.pop(conn, None)

    async def _serve(self, conn: FramedConnection) -> None:
        """Answer one connection's messages in order until it ends or framing is lost."""
        try:
            while True:
                item = await conn.next()
                if item is None:
                    break
                if isinstance(item, ProtocolError):
                    self.stats.errors[item.code.name] += 1
                    await conn.write(error_message(item.request_id, item))
                    if item.fatal:
                        conn.finish()  # the error reaches the peer, then the connection ends
                        return
                    conn.done()
                    continue
                reserved = item.reserved
                try:
                    await conn.write(await self._answer(item))
                finally:
                    item = None  # its payload and tensors go now, before memory is given back
                    self.budget.release(reserved)
                    conn.done()
                    self._maybe_trim()
        except (ConnectionError, asyncio.CancelledError):
            pass
        conn.close()

    async def _answer(self, request: Request) -> bytes:
        """The reply to one request: its result, or an ERROR naming what was wrong."""
        self._busy += 1
        try:
            return await self._dispatch(request)
        except ProtocolError as exc:
            self.stats.errors[exc.code.name] += 1
            return error_message(request.request_id, exc)
        except Exception as exc:  # a bug of ours: tell the peer, keep serving
            self.stats.errors[ErrorCode.INTERNAL.name] += 1
            text = f"{type(exc).__name__}: {exc}"
            return error_message(request.request_id, ProtocolError(ErrorCode.INTERNAL, text))
        finally:
            self._busy -= 1

    def _maybe_trim(self) -> None:
        if self.budget.trim_due():
            self.stats.events["trims"] += 1
            self._decoder.submit(release_free_memory)

    # -- deciding from the header alone
    def _admit(self, kind: Kind, header: dict[str, Any], payload_len: int) -> Admission:
        """Whether a message's payload is wanted, decided before a byte of it is read."""
        if kind in (Kind.RESULT, Kind.ERROR, Kind.PONG):
            raise ProtocolError(ErrorCode.UNSUPPORTED, f"the edge does not take {kind.name}", True)
        if kind is not Kind.INFER and payload_len:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"{kind.name} carries no payload", True)
        if kind is Kind.PING:
            return Admission()
        if not self.tokens.accepts(header.get("token")):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "missing or wrong auth token (--token)",
                                True)  # fmt: skip
        if kind is not Kind.INFER:
            return Admission()
        model = header.get("model")
        # the same model as the device's, before its tensors are judged by this one's boundary
        self.store.check_fingerprint(model, header.get("exit"), header.get("fp"))
        expected = self.store.boundary(model, header.get("cut"), header.get("exit"))  # type: ignore[arg-type]
        what = f"cut {header['cut']} of {model!r}"
        wires = check_tensors(header.get("tensors"), self.limits, expected, what)
        if payload_len != payload_bytes(wires):
            raise ProtocolError(ErrorCode.BAD_TENSOR,
                                f"the payload has {payload_len} bytes, the tensors claim "
                                f"{payload_bytes(wires)}")  # fmt: skip
        assert isinstance(model, str)
        exit = header.get("exit")  # checked by boundary(): nil or one of the model's exits
        need = payload_len + decode_bytes(wires) + self.store.reply_bytes(model, exit)
        if not self.budget.reserve(need):
            raise ProtocolError(ErrorCode.BUSY,
                                f"the server's memory budget is in use ({self.budget.in_use} of "
                                f"{self.budget.limit} bytes): try again later")  # fmt: skip
        return Admission(bytearray(payload_len), need, job=_Job(model, header["cut"], exit, wires))

    # -- answering
    async def _dispatch(self, request: Request) -> bytes:
        rid = request.request_id
        if request.kind is Kind.PING:
            return pack(Kind.PONG, {"id": rid})
        if request.kind is Kind.STATS:
            summary = self.stats.summary()
            summary["budget"] = self.budget.summary()
            summary["open_connections"] = len(self._open)
            summary["models"] = self.store.describe()
            if self.groups is not None:
                summary["groups"] = self.groups.describe()
            return pack(Kind.RESULT, {"id": rid, "stats": summary, "slowdown": self.slowdown})
        if request.kind is Kind.SYNC:
            if self.groups is None:
                raise ProtocolError(ErrorCode.UNSUPPORTED, "this server keeps no federated "
                                    "statistics: start it with --federation")  # fmt: skip
            return pack(Kind.RESULT, {"id": rid, **self.groups.sync(parse_sync(request.header))})
        if request.kind is Kind.CONTROL:
            if not self.control_allowed:
                raise ProtocolError(ErrorCode.UNSUPPORTED, "CONTROL is off on this server: "
                                    "start it with --token (CONTROL then needs the token) or "
                                    "--allow-control")  # fmt: skip
            try:
                self.set_slowdown(request.header.get("slowdown"))  # type: ignore[arg-type]
            except ValueError as exc:
                raise ProtocolError(ErrorCode.BAD_HEADER, f"CONTROL: {exc}") from None
            return pack(Kind.RESULT, {"id": rid, "slowdown": self.slowdown})
        return await self._infer(request)

    async def _infer(self, request: Request) -> bytes:
        start = time.perf_counter()
        job: _Job = request.job
        if any(w.needs_work for w in job.wires):  # decompress/dequantise off the event loop
            loop = asyncio.get_running_loop()
            tensors = await loop.run_in_executor(self._decoder, decode, job.wires,
                                                 request.payload)  # fmt: skip
        else:
            tensors = decode(job.wires, request.payload)  # views of the receive buffer
        self.stats.requests += 1
        outputs, compute_s = await self._run(job.model, job.cut, job.exit, tensors)
        del tensors
        edge_s = compute_s * self.slowdown
        if self.slowdown > 1.0:  # the emulated slower edge: wait out the difference
            await asyncio.sleep(edge_s - compute_s)
        metas, payload = encode_tensors(outputs)
        self.stats.edge_s.append(edge_s)
        self.stats.handle_s.append(time.perf_counter() - start)
        return pack(Kind.RESULT, {"id": request.request_id, "edge_s": edge_s, "tensors": metas},
                    payload)  # fmt: skip

    async def _run(
        self, model: str, cut: int, exit: int | None, tensors: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], float]:
        loop = asyncio.get_running_loop()
        if self.batch_window_s <= 0:
            return await loop.run_in_executor(self._executor, forward, self.store, model, cut,
                                              tensors, exit)  # fmt: skip
        key = (model, cut, exit)
        future: asyncio.Future[tuple[list[torch.Tensor], float]] = loop.create_future()
        queue = self._pending.setdefault(key, [])
        queue.append(_Pending(tensors, future))
        if len(queue) == 1:
            loop.call_later(self.batch_window_s, lambda: asyncio.ensure_future(self._flush(key)))
        return await future

    async def _flush(self, key: tuple[str, int, int | None]) -> None:
        batch = self._pending.pop(key, [])
        if not batch:
            return
        self.stats.batches += 1
        self.stats.batched_requests += len(batch)
        try:
            loop = asyncio.get_running_loop()
            model, cut, exit = key
            results = await loop.run_in_executor(
                self._executor,
                forward_batch,
                self.store,
                model,
                cut,
                [p.tensors for p in batch],
                exit,
            )
        except Exception as exc:
            error = exc if isinstance(exc, ProtocolError) else ProtocolError(
                ErrorCode.INTERNAL, f"the back half raised: {exc}")  # fmt: skip
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(error)
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)
