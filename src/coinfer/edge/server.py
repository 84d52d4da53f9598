"""The edge server (`coinfer serve`): runs the back halves devices ask for, over asyncio TCP.

One connection per device (``edge.connection``); its messages are read and answered one at a
time, while other connections are served concurrently. Whether a message is taken is decided
from its header alone (``edge.gate``); back halves run on one worker thread
(``edge.compute``), so the event loop keeps reading, refusing and answering while a model runs.
Everything a peer can make the server hold is reserved from one memory budget first, and every
connection has a deadline in every state (docs/security.md): nothing one client sends can stop
the server serving the others. The server reads its options (``edge.options``) as they are.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
import time
from typing import Any

from coinfer.dtypes import to_arrays
from coinfer.edge.budget import MemoryBudget
from coinfer.edge.compute import Compute
from coinfer.edge.connection import Deadlines, ErrorReply, FramedConnection, native_error
from coinfer.edge.gate import Gate, InferJob
from coinfer.edge.groups import GroupStore
from coinfer.edge.logins import LoginThrottle
from coinfer.edge.metrics import CONTENT_TYPE as METRICS_TYPE
from coinfer.edge.metrics import EdgeMetrics, labels
from coinfer.edge.options import ServerOptions
from coinfer.edge.security import TokenCheck, check_exposure, server_tls, short_token
from coinfer.edge.stats import ServerStats
from coinfer.edge.store import ModelStore
from coinfer.edge.v2 import V2Call, V2Routes, error_response, text_response
from coinfer.errors import BadValueError
from coinfer.latency.host import release_free_memory
from coinfer.wire.http import HttpParser
from coinfer.wire.messages import (
    Control,
    ControlReply,
    InferResult,
    Pong,
    StatsReply,
    check_slowdown,
    encode,
)
from coinfer.wire.parser import SCRATCH_BYTES, Parser
from coinfer.wire.protocol import ErrorCode, Kind, Message, ProtocolError
from coinfer.wire.sync import Sync
from coinfer.wire.tensors import encode_tensors

log = logging.getLogger("coinfer.serve")

FD_RESERVE = 64  # file descriptors kept for the server's own files, threads and models
LOG_REPEAT_S = 10.0  # the same loop error is logged at most once in this long


class EdgeServer:
    """``await start()``, then serve until ``close()`` (or a signal: ``edge.process``)."""

    def __init__(self, store: ModelStore, options: ServerOptions | None = None) -> None:
        self.options = options = options or ServerOptions()
        self.store = store
        self.slowdown = options.slowdown
        self.tokens = TokenCheck(options.token)
        self.deadlines = Deadlines(
            options.read_timeout_s,
            options.idle_timeout_s,
            options.write_timeout_s,
            options.login_timeout_s,
            options.min_receive_rate,
        )
        self.logins = LoginThrottle()
        self.budget = MemoryBudget(options.max_buffer_bytes)
        self.notices: list[str] = []  # one-line warnings for whoever started the server
        if (weak := short_token(options.token, options.insecure)) is not None:
            self.notices.append(weak)
        self.max_connections = self._connection_cap(options.max_connections)
        self.tls = server_tls(options.tls_cert, options.tls_key) if options.tls_cert else None
        self.stats = ServerStats()
        self.groups = GroupStore(options.max_groups) if options.federation else None
        self.gate = Gate(store, self.tokens, self.budget, options.limits)
        self.compute = Compute(store, self.stats, options.batch_window_s)
        self.v2 = V2Routes(store, options.limits)
        self.metrics = EdgeMetrics(self._state)
        self._server: asyncio.Server | None = None
        self._http: asyncio.Server | None = None
        self.http_address: tuple[str, int] | None = None  # where v2 is answered, once started
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
            raise BadValueError(
                f"only {soft} file descriptors are allowed (ulimit -n): raise it above {FD_RESERVE}"
            )
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
        if self.options.allow_control is None:
            return self.tokens.required
        return self.options.allow_control

    async def start_http(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Also answer the Open Inference Protocol v2 (REST) on ``port``: the same models,
        slots, token, budget and deadlines (``edge.v2``); ``start`` does it when the options
        give an ``http_port``."""
        loop = asyncio.get_running_loop()
        self._http = await loop.create_server(
            self._new_http_connection, host, port, backlog=min(1024, self.max_connections)
        )
        sock = self._http.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        warning = check_exposure(host, self.tokens.required, self.options.insecure)
        if warning:
            self.notices.append(warning)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_error)
        self._server = await loop.create_server(
            self._new_connection,
            host,
            port,
            backlog=min(1024, self.max_connections),
        )
        sock = self._server.sockets[0].getsockname()
        if self.options.http_port is not None:
            self.http_address = await self.start_http(host, self.options.http_port)
        return str(sock[0]), int(sock[1])

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish (up to ``grace_s``), then close
        every connection."""
        for listener in (self._server, self._http):
            if listener is not None:
                listener.close()
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
        for listener in (self._server, self._http):
            if listener is not None:
                await listener.wait_closed()
        self.compute.shutdown()

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
        log.warning(
            "%s%s (the server keeps serving; repeats are counted, not logged, for %g s)",
            message,
            detail,
            LOG_REPEAT_S,
        )

    # -- connections
    def _new_connection(self) -> FramedConnection:
        return self._connection(Parser(self.options.limits, self.budget, self._scratch))

    def _new_http_connection(self) -> FramedConnection:
        parser = HttpParser(self.options.limits, self.v2.translate, self.budget, self._scratch)
        return self._connection(parser, error_response)

    def _connection(
        self, parser: Parser | HttpParser, reply_error: ErrorReply = native_error
    ) -> FramedConnection:
        """A connection of either door: the same gate, deadlines, slots and login throttle."""
        return FramedConnection(
            parser,
            self.gate.admit,
            self.deadlines,
            self._on_made,
            self._on_lost,
            self.stats.events,
            logins=self.logins,
            tls=self.tls,
            reply_error=reply_error,
        )

    def _on_made(self, conn: FramedConnection) -> None:
        ending = [c for c in self._open if c.closing]  # their last words written, they hold
        if len(ending) >= self.max_connections:  # no slot, but no more descriptors than slots
            for closing in ending:
                closing.abort()
            self.stats.events["closing_aborted"] += len(ending)
        live = [c for c in self._open if not c.closing]
        neighbours = [c for c in live if c.source == conn.source]
        if len(neighbours) >= self.options.max_per_source:  # room from its own address only
            if not self._make_room(conn, neighbours, f"{conn.source} has", "per_source_refused"):
                return
        elif len(live) >= self.max_connections and not self._make_room(
            conn, live, "the server has", "refused"
        ):
            return
        self.stats.connections += 1
        task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._open[conn] = task

    def _make_room(
        self, conn: FramedConnection, holders: list[FramedConnection], who: str, refused: str
    ) -> bool:
        """Close one of ``holders`` for ``conn``, or refuse ``conn`` (False). A stranger (never
        past the token, PINGs aside) keeps no slot, even mid-message: trickled PINGs or stalled
        first bytes cannot hoard the server. Room is made by a stranger (an idle one first,
        then the longest quiet), else by the longest idle device: a device between frames is
        the last to go."""
        movable = [c for c in holders if c.idle or not (c.proven or c.busy)]
        if not movable:  # every device is mid-request: this one waits its turn elsewhere
            self.stats.events[refused] += 1
            busy = ProtocolError(
                ErrorCode.BUSY, f"{who} {len(holders)} connections, all busy: try again later"
            )
            conn.refuse(conn.reply_error(busy))
            return False
        victim = min(movable, key=lambda c: (c.proven, not c.idle, c.last_active))
        self._open.pop(victim, None)
        self.stats.events["evicted"] += 1
        victim.close()
        return True

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
                    await conn.write(conn.reply_error(item))
                    if item.fatal:
                        conn.finish()  # the error reaches the peer, then the connection ends
                        return
                    conn.done()
                    continue
                reserved = item.reserved
                try:
                    await conn.write(await self._answer(item, conn))
                finally:
                    item = None  # its payload and tensors go now, before memory is given back
                    self.budget.release(reserved)
                    conn.done()
                    self._maybe_trim()
        except (ConnectionError, asyncio.CancelledError):
            pass
        conn.close()

    async def _answer(
        self, request: Message, conn: FramedConnection
    ) -> bytes | list[bytes | memoryview]:
        """The reply to one request on ``conn``: its result, or an error naming what was
        wrong, as the connection's protocol says them."""
        self._busy += 1
        try:
            call = request.header.get("v2")
            if isinstance(call, V2Call):
                return await self._answer_v2(request, call)
            return await self._dispatch(request, conn.source)
        except ProtocolError as exc:
            self.stats.errors[exc.code.name] += 1
            exc.request_id = request.request_id
            return conn.reply_error(exc)
        except Exception as exc:  # a bug of ours: tell the peer, keep serving
            self.stats.errors[ErrorCode.INTERNAL.name] += 1
            text = f"{type(exc).__name__}: {exc}"
            error = ProtocolError(ErrorCode.INTERNAL, text)
            error.request_id = request.request_id
            return conn.reply_error(error)
        finally:
            self._busy -= 1

    async def _answer_v2(self, request: Message, call: V2Call) -> bytes | list[bytes | memoryview]:
        if call.endpoint == "metrics":
            return text_response(self.metrics.exposition(), METRICS_TYPE)
        if request.kind is not Kind.INFER:
            return self.v2.answer(call)
        outputs, edge_s = await self._run(request.job, request.payload)
        return self.v2.infer_reply(call, outputs, edge_s)

    def _maybe_trim(self) -> None:
        if self.budget.trim_due():
            self.stats.events["trims"] += 1
            self.compute.background(release_free_memory)

    def _state(self) -> dict[str, Any]:
        """What the metrics read at a scrape: budget, connections by state, groups, counters."""
        open_ = list(self._open)
        return {
            "in_use": self.budget.in_use,
            "limit": self.budget.limit,
            "connections": {
                "open": len(open_),
                "proven": sum(c.proven for c in open_),
                "busy": sum(c.busy for c in open_),
                "idle": sum(c.idle for c in open_),
            },
            "groups": len(self.groups.groups) if self.groups is not None else 0,
            "events": dict(self.stats.events),
            "errors": dict(self.stats.errors),
        }

    def describe(self) -> dict[str, Any]:
        """What STATS answers: the counters, the budget, connections, models and groups."""
        summary = self.stats.summary()
        summary["budget"] = self.budget.summary()
        summary["open_connections"] = len(self._open)
        summary["models"] = self.store.describe()
        summary["inference"] = self.metrics.summary()  # what /metrics says, per model and cut
        if self.groups is not None:
            summary["groups"] = self.groups.describe()
        return summary

    async def _dispatch(self, request: Message, source: str) -> bytes:
        rid = request.request_id
        if request.kind is Kind.INFER:
            reply = await self._infer(request.job, request.payload)
            if self.groups is not None:  # what a member there may learn from
                self.groups.answered(source)
            return reply
        if request.kind is Kind.PING:
            return encode(Pong(rid))
        if request.kind is Kind.STATS:
            return encode(StatsReply(rid, self.describe(), self.slowdown))
        if request.kind is Kind.SYNC:
            if self.groups is None:
                raise ProtocolError(
                    ErrorCode.UNSUPPORTED,
                    "this server keeps no federated statistics: start it with --federation",
                )
            self.metrics.syncs.inc()
            return encode(self.groups.sync(Sync.parse(request.header), source))
        if not self.control_allowed:  # CONTROL: the gate takes no other kind
            raise ProtocolError(
                ErrorCode.UNSUPPORTED,
                "CONTROL is off on this server: start it "
                "with --token (CONTROL then needs the token) or "
                "--allow-control",
            )
        self.slowdown = Control.parse(request.header).slowdown
        return encode(ControlReply(rid, self.slowdown))

    async def _run(self, job: InferJob, payload: bytes | bytearray) -> tuple[list[Any], float]:
        """A back half on an admitted request's tensors: its outputs (numpy) and the edge's
        time (the emulated slower edge's, waited out)."""
        start = time.perf_counter()
        infer = job.request
        key = labels(infer.model, infer.cut, infer.exit)
        self.metrics.started(key)
        try:
            tensors = await self.compute.decode(job.wires, payload)
            self.stats.requests += 1
            ran = await self.compute.run((infer.model, infer.cut, infer.exit), tensors)
            del tensors
            edge_s = ran.compute_s * self.slowdown
            if self.slowdown > 1.0:  # the emulated slower edge: wait out the difference
                await asyncio.sleep(edge_s - ran.compute_s)
            arrays = to_arrays(ran.outputs)
        except BaseException:
            self.metrics.failed(key)
            raise
        handle_s = time.perf_counter() - start
        self.stats.edge_s.append(edge_s)
        self.stats.handle_s.append(handle_s)
        self.metrics.observe(key, handle_s, ran.started - start, edge_s, ran.share)
        return arrays, edge_s

    async def _infer(self, job: InferJob, payload: bytes | bytearray) -> bytes:
        arrays, edge_s = await self._run(job, payload)
        metas, body = encode_tensors(arrays)
        return encode(InferResult(job.request.id, edge_s, metas), body)
