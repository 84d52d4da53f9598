"""Messages off a TCP stream, one at a time, without copying and without trusting lengths.

``MessageParser`` is the protocol's state machine with no I/O (so it can be fuzzed): it asks for
a buffer, is told how many bytes landed in it, and says when a message is whole. A message's
prefix goes into a fixed 12-byte buffer; its header (at most ``Limits.max_header_bytes``) into a
buffer charged to the memory budget with what its parsed form may take; then the server's
``admit`` decides, from the parsed header alone, whether the payload is wanted (token, model,
cut and tensors checked, its memory reserved), and only then is the payload's buffer allocated,
of exactly the size that (model, cut) needs. A payload that is not wanted is read into a shared
scratch buffer and dropped, so the connection stays framed without the server holding it.

``FramedConnection`` is the asyncio ``BufferedProtocol`` around it: the kernel writes straight
into those buffers (the payload's buffer then becomes the tensors, zero-copy). It reads one
message at a time — reading pauses from a whole message until its reply is written — and puts
a deadline on everything: a message must be whole within ``read_timeout_s`` of its first byte,
a connection with no message in progress is closed after ``idle_timeout_s``, and a reply the
peer does not take within ``write_timeout_s`` drops the connection and frees what it held.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coinfer.runtime.budget import MemoryBudget
from coinfer.runtime.protocol import (
    PREFIX,
    ErrorCode,
    Kind,
    Limits,
    ProtocolError,
    request_id_of,
    unpack_header,
    unpack_prefix,
)

SCRATCH_BYTES = 64 * 1024
# a parsed msgpack header takes up to ~73 bytes of Python objects per byte (a list of empty
# maps, measured): a header is charged this much from parsing until it is let go (while it is
# being received, only its own size)
HEADER_EXPANSION = 80
CLOSE_GRACE_S = 1.0  # a closing connection's peer has this long to read our last words
DRAIN_BYTES = 1024 * 1024  # after a fatal error, at most this much more is read and dropped


@dataclass
class Admission:
    """What the server decided from a message's header, before its payload is read."""

    payload: bytearray | None = None  # the payload's buffer (its size: the announced length)
    reserved: int = 0  # budget bytes held from here until the reply is written
    error: ProtocolError | None = None  # answered once the payload is skipped (at once if fatal)
    job: Any = None  # what the handler needs, already checked


Admit = Callable[[Kind, dict[str, Any], int], Admission]


@dataclass
class Request:
    """A whole message the server agreed to take; ``reserved`` bytes are held for it."""

    kind: Kind
    header: dict[str, Any]
    payload: bytearray
    job: Any
    reserved: int

    @property
    def request_id(self) -> int | None:
        return request_id_of(self.header)


Item = Request | ProtocolError | None  # None: the peer is gone


class MessageParser:
    """The framing state machine: ``buffer()`` to fill, ``feed(n)`` when n bytes arrived."""

    def __init__(
        self, limits: Limits, budget: MemoryBudget, admit: Admit, scratch: bytearray
    ) -> None:
        self.limits = limits
        self.budget = budget
        self.admit = admit
        self.scratch = scratch
        self._prefix = bytearray(PREFIX.size)
        self.held = 0  # budget bytes the message being read holds
        self.stopped = False
        self._reset()

    def _reset(self) -> None:
        self.stage = "prefix"
        self._buf: bytearray = self._prefix
        self._pos = 0
        self._skip = 0
        self._pending: ProtocolError | None = None

    @property
    def started(self) -> bool:
        """A message is partly read (its first byte has arrived)."""
        return self.stage != "prefix" or self._pos > 0

    def buffer(self) -> memoryview:
        if self.stopped:
            return memoryview(self.scratch)
        if self.stage == "skip":
            return memoryview(self.scratch)[: min(len(self.scratch), self._skip)]
        return memoryview(self._buf)[self._pos :]

    def feed(self, nbytes: int) -> Item:
        """Account for ``nbytes`` written into ``buffer()``; a message or an error once one is
        complete (a fatal error stops the parser: what follows cannot be trusted)."""
        if self.stopped or nbytes <= 0:
            return None
        if self.stage == "skip":
            self._skip -= nbytes
            if self._skip > 0:
                return None
            error = self._pending
            self._reset()
            return error
        self._pos += nbytes
        if self._pos < len(self._buf):
            return None
        try:
            return self._advance()
        except ProtocolError as exc:
            return self.stop(exc)

    def _advance(self) -> Item:
        if self.stage == "prefix":
            self._kind, header_len, self._payload_len = unpack_prefix(bytes(self._prefix),
                                                                      self.limits)  # fmt: skip
            self._reserve(header_len)
            self.held = header_len
            self.stage, self._buf, self._pos = "header", bytearray(header_len), 0
            if header_len:
                return None
        if self.stage == "header":
            body, self._buf = self._buf, self._prefix
            self._reserve(len(body) * (HEADER_EXPANSION - 1))  # what parsing it may take
            self.held += len(body) * (HEADER_EXPANSION - 1)
            try:
                header = unpack_header(body)
            except ProtocolError as exc:
                header, admission = {}, Admission(error=exc)
            else:
                admission = self._admit(header)
            del body
            if self._kind == Kind.INFER or admission.error is not None:
                header = {"id": request_id_of(header)}  # the job holds the rest, checked
                self.release()  # so the parsed header is let go, and its charge with it
            if admission.error is not None:
                error = admission.error
                if error.request_id is None:
                    error.request_id = header["id"]
                if error.fatal:
                    return self.stop(error)
                if self._payload_len:
                    self.stage, self._skip, self._pending = "skip", self._payload_len, error
                    return None
                self._reset()
                return error
            self.held += admission.reserved
            self._header, self._job = header, admission.job
            payload = admission.payload if admission.payload is not None else bytearray()
            if len(payload) != self._payload_len:  # admit must allocate what was announced
                raise ProtocolError(ErrorCode.INTERNAL, "payload buffer of the wrong size", True)
            self.stage, self._buf, self._pos = "payload", payload, 0
            if self._payload_len:
                return None
        request = Request(Kind(self._kind), self._header, self._buf, self._job, self.held)
        self.held = 0  # the request holds it now, until its reply is written
        self._reset()
        return request

    def _reserve(self, nbytes: int) -> None:
        if not self.budget.reserve(nbytes):
            raise ProtocolError(ErrorCode.BUSY, "the server's memory budget is in use: try "
                                "again later", True)  # fmt: skip

    def _admit(self, header: dict[str, Any]) -> Admission:
        try:
            return self.admit(Kind(self._kind), header, self._payload_len)
        except ProtocolError as exc:
            return Admission(error=exc)
        except Exception as exc:  # a bug of ours: the peer hears of it, the server goes on
            return Admission(error=ProtocolError(ErrorCode.INTERNAL, f"{type(exc).__name__}: "
                                                 f"{exc}"))  # fmt: skip

    def stop(self, error: ProtocolError) -> ProtocolError:
        """No more messages: release what the current one holds; ``error`` becomes fatal."""
        self.release()
        self.stopped = True
        error.fatal = True
        return error

    def release(self) -> None:
        self.budget.release(self.held)
        self.held = 0


@dataclass(frozen=True)
class Deadlines:
    read_timeout_s: float | None = 10.0  # from a message's first byte to its last
    idle_timeout_s: float | None = 60.0  # no message in progress and none being answered
    write_timeout_s: float = 10.0  # a reply not taken by the peer in this time drops it


class FramedConnection(asyncio.BufferedProtocol):
    """One peer's connection: ``await next()`` for its messages, ``await write()`` a reply,
    then ``done()`` to read the next."""

    def __init__(
        self,
        parser: MessageParser,
        deadlines: Deadlines,
        on_made: Callable[[FramedConnection], None],
        on_lost: Callable[[FramedConnection], None],
        events: collections.Counter[str],
        half_close: bool = True,
    ) -> None:
        self.parser = parser
        self.deadlines = deadlines
        self.on_made = on_made
        self.on_lost = on_lost
        self.events = events
        self.half_close = half_close  # TLS cannot keep a half-closed connection
        self.transport: asyncio.Transport | None = None
        self.items: asyncio.Queue[Item] = asyncio.Queue()
        self.busy = False  # a message is being answered
        self.proven = False  # the peer has had a request past the token answered
        self.last_active = time.monotonic()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._read_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._drained = 0
        self._paused = False

    @property
    def idle(self) -> bool:
        """Connected, with no message in progress and none being answered."""
        return not self.busy and not self.parser.started and not self.closing

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing() or self.parser.stopped

    # -- reading
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # pause writing whenever anything is left unsent: a reply counts against the budget
        # until the kernel has it all, and a peer that never reads is noticed (high=1: TLS
        # transports pause at size >= high, plain ones at size > high)
        transport.set_write_buffer_limits(high=1, low=0)
        self._arm_idle()
        self.on_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.parser.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self.parser.stopped:  # read and dropped, so that the end is a FIN, not a reset;
            self._drained += nbytes  # but a peer that floods is not read any further
            if self._drained > DRAIN_BYTES and self.transport is not None:
                self.transport.pause_reading()
            return
        if nbytes and not self.parser.started:
            if self.busy:  # the peer sends ahead: nothing more is read until it is answered
                self._pause()  # (its deadline starts then)
            else:
                self._start_deadline()
        item = self.parser.feed(nbytes)
        if item is None:
            return
        self._cancel_read()
        if not (isinstance(item, ProtocolError) and item.fatal):
            self.busy = True  # one message at a time: the next waits for done()
            if isinstance(item, Request) and item.kind is not Kind.PING:
                self.proven = True
        self.items.put_nowait(item)

    def _start_deadline(self) -> None:
        timeout = self.deadlines.read_timeout_s
        if timeout is not None:
            self._read_timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _timed_out(self) -> None:
        self._read_timer = None
        limit = self.deadlines.read_timeout_s or 0.0
        self.events["read_timeouts"] += 1
        self.items.put_nowait(self.parser.stop(
            ProtocolError(ErrorCode.TIMEOUT, f"no whole message within {limit:g} s")))  # fmt: skip

    def eof_received(self) -> bool:
        if self.parser.started and not self.parser.stopped:
            self._cancel_read()
            self.items.put_nowait(self.parser.stop(
                ProtocolError(ErrorCode.BAD_FRAME, "connection closed mid-message")))  # fmt: skip
        self.items.put_nowait(None)
        return self.half_close  # keep the transport to answer; the handler then closes it

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read()
        self._cancel_idle()
        self.parser.release()
        self.items.put_nowait(None)
        self._can_write.set()
        self.on_lost(self)

    async def next(self) -> Item:
        return await self.items.get()

    def done(self) -> None:
        """The last message is answered: read the next (whose deadline starts now, if it
        began to arrive meanwhile); the idle clock runs from here."""
        self.busy = False
        self.last_active = time.monotonic()
        if self.closing or self.transport is None:
            return
        if self.parser.started and self._read_timer is None:
            self._start_deadline()
        if self._paused:
            self._paused = False
            self.transport.resume_reading()

    # -- timers
    def _arm_idle(self, delay: float | None = None) -> None:
        """One timer per connection, re-armed when it fires rather than at every message."""
        timeout = self.deadlines.idle_timeout_s
        if timeout is not None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(timeout if delay is None else delay, self._idled)

    def _idled(self) -> None:
        self._idle_timer = None
        timeout = self.deadlines.idle_timeout_s or 0.0
        if self.closing:
            return
        quiet = time.monotonic() - self.last_active
        if self.idle and quiet >= timeout * 0.999:
            self.events["idle_closed"] += 1
            self.close()
            return
        self._arm_idle(timeout - quiet if self.idle else timeout)

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _cancel_read(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    # -- writing, with a deadline
    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def write(self, data: bytes) -> None:
        """Hand ``data`` to the kernel; a peer that does not take it within the write
        timeout is dropped (ConnectionError), and what was queued for it is freed."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the peer is gone")
        self.transport.write(data)
        if self._can_write.is_set():
            return
        try:
            async with asyncio.timeout(self.deadlines.write_timeout_s):
                await self._can_write.wait()
        except TimeoutError:
            self.events["write_timeouts"] += 1
            self.abort()
            raise ConnectionError("the peer does not read its replies") from None

    # -- ending
    def finish(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """End after an error without losing it: send FIN so the peer reads the error, then
        the end; whatever else it sends is dropped, and after ``grace_s`` the connection is
        aborted (closing at once with unread bytes would reset it and could drop the error)."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            if self.half_close and self.transport.can_write_eof():
                self.transport.write_eof()
            else:
                self.transport.close()
        except OSError:  # the peer is already gone (reset)
            self.abort()
            return
        asyncio.get_running_loop().call_later(grace_s, self.abort)

    def refuse(self, data: bytes) -> None:
        """Say ``data`` (an ERROR) and end, reading nothing more from this peer."""
        self.parser.stop(ProtocolError(ErrorCode.BUSY, "refused"))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        self.finish()

    def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
            asyncio.get_running_loop().call_later(grace_s, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
