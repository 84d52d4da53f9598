"""Messages off a byte stream, one at a time, without copying and without trusting lengths.

``Parser`` is the protocol's state machine with no I/O (so it can be fuzzed), the one both
sides read with: it asks for a buffer, is told how many bytes landed in it, and says what
happened. A message's prefix goes into a fixed 12-byte buffer; its header (at most
``Limits.max_header_bytes``) into a buffer charged to a memory budget with what its parsed form
may take. Then it hands the parsed header over (``Head``) and waits: the reader decides from the
header alone whether the payload is wanted (``decide``) — the edge checks token, model, cut and
tensors and reserves the payload's memory; the device takes the reply its request expects — and
only then is the payload's buffer given, of exactly the announced size. A payload that is not
wanted is read into a scratch buffer and dropped, so the stream stays framed without the reader
holding it. A fatal error (framing lost) stops the parser: nothing after it is trusted.

The edge drives it from an asyncio ``BufferedProtocol`` (``edge.connection``: the kernel writes
straight into these buffers), the device from a stream (``device.streams``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from coinfer.wire.protocol import (
    PREFIX,
    ErrorCode,
    Kind,
    Limits,
    Message,
    ProtocolError,
    request_id_of,
    unpack_header,
    unpack_prefix,
)

SCRATCH_BYTES = 64 * 1024
# a parsed msgpack header takes up to ~92 bytes of Python objects per byte: maps of one entry
# nested ({'': {'': ...}}, 2 bytes on the wire, a 184-byte dict each; measured by
# tests/wire/test_header_cost.py): a header is charged this much from parsing until it is let
# go (while it is being received, only its own size)
HEADER_EXPANSION = 96


class Budget(Protocol):
    """What a reader may hold: ``reserve`` says whether ``nbytes`` more fit (and holds them)."""

    def reserve(self, nbytes: int) -> bool: ...

    def release(self, nbytes: int) -> None: ...


class Unbounded:
    """No budget (a device reading the replies to its own requests: their size is bounded by
    what it asked for)."""

    def reserve(self, nbytes: int) -> bool:
        return True

    def release(self, nbytes: int) -> None:
        """Nothing is counted."""


@dataclass(frozen=True)
class Head:
    """A message's parsed header, before any byte of its payload is read."""

    kind: Kind
    header: dict[str, Any]
    payload_len: int
    protocol: str = "native"  # or "v2": the Open Inference Protocol, translated (wire.http)


@dataclass
class Admission:
    """What the reader decided from a message's header, before its payload is read."""

    payload: bytearray | None = None  # the payload's buffer (its size: the announced length)
    reserved: int = 0  # budget bytes held from here until the message is let go
    error: ProtocolError | None = None  # answered once the payload is skipped (at once if fatal)
    job: Any = None  # what the reader needs of the header, parsed and checked
    keep_header: bool = True  # False: the header is let go (the job holds what is needed)


Event = Message | ProtocolError | Head | None  # None: more bytes are needed


class Parser:
    """The framing state machine: ``buffer()`` to fill, ``feed(n)`` when n bytes arrived; after
    a ``Head``, ``decide(admission)`` before anything else."""

    def __init__(
        self, limits: Limits, budget: Budget | None = None, scratch: bytearray | None = None
    ) -> None:
        self.limits = limits
        self.budget: Budget = budget if budget is not None else Unbounded()
        self._scratch = scratch  # where skipped bytes go: allocated when first needed
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
    def scratch(self) -> bytearray:
        if self._scratch is None:
            self._scratch = bytearray(SCRATCH_BYTES)
        return self._scratch

    @property
    def started(self) -> bool:
        """A message is partly read (its first byte has arrived)."""
        return self.stage != "prefix" or self._pos > 0

    @property
    def pending(self) -> bool:
        """Bytes of a next message are held (never: this parser reads no byte ahead)."""
        return False

    def buffer(self) -> memoryview:
        if self.stage == "head":
            raise RuntimeError("decide() on the message's header before reading on")
        if self.stopped:
            return memoryview(self.scratch)
        if self.stage == "skip":
            return memoryview(self.scratch)[: min(len(self.scratch), self._skip)]
        return memoryview(self._buf)[self._pos :]

    def feed(self, nbytes: int) -> Event:
        """Account for ``nbytes`` written into ``buffer()``: a ``Head`` once a header is parsed,
        a message or an error once one is complete (a fatal error stops the parser)."""
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

    def _advance(self) -> Event:
        if self.stage == "prefix":
            self._kind, header_len, self._payload_len = unpack_prefix(
                bytes(self._prefix), self.limits
            )
            self._reserve(header_len)
            self.held = header_len
            self.stage, self._buf, self._pos = "header", bytearray(header_len), 0
            if header_len:
                return None
        if self.stage == "header":
            body, self._buf = self._buf, self._prefix
            self._size = PREFIX.size + len(body) + self._payload_len
            self._reserve(len(body) * (HEADER_EXPANSION - 1))  # what parsing it may take
            self.held += len(body) * (HEADER_EXPANSION - 1)
            self.stage = "head"
            try:
                header = unpack_header(body)
            except ProtocolError as exc:
                self._header: dict[str, Any] = {}
                return self.decide(Admission(error=exc))
            self._header = header
            return Head(Kind(self._kind), header, self._payload_len)
        return self._whole()

    def decide(self, admission: Admission) -> Message | ProtocolError | None:
        """Go on after a ``Head``: read the payload into ``admission.payload`` (exactly the
        announced size), or skip it and report ``admission.error``."""
        if self.stage != "head":
            raise RuntimeError("decide() answers a Head, and only once")
        header = self._header
        if not admission.keep_header or admission.error is not None:
            header = {"id": request_id_of(header)}
            self.release()  # the parsed header is let go, and its charge with it
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
        if len(payload) != self._payload_len:  # the reader must give what was announced
            return self.stop(ProtocolError(ErrorCode.INTERNAL, "payload buffer of the wrong size"))
        self.stage, self._buf, self._pos = "payload", payload, 0
        if self._payload_len:
            return None
        return self._whole()

    def _whole(self) -> Message:
        message = Message(
            Kind(self._kind), self._header, self._buf, self.held, self._job, self._size
        )
        self.held = 0  # the message holds it now, until it is let go
        self._reset()
        return message

    def _reserve(self, nbytes: int) -> None:
        if not self.budget.reserve(nbytes):
            raise ProtocolError(
                ErrorCode.BUSY, "the server's memory budget is in use: try again later", True
            )

    def stop(self, error: ProtocolError) -> ProtocolError:
        """No more messages: release what the current one holds; ``error`` becomes fatal."""
        self.release()
        self.stopped = True
        self.stage = "stopped"
        error.fatal = True
        return error

    def release(self) -> None:
        self.budget.release(self.held)
        self.held = 0
