"""Messages off a TCP stream without copying them: the server's side of the protocol.

An ``asyncio.BufferedProtocol`` that has the kernel write each message's prefix, header and
payload straight into buffers of exactly their size (the payload's buffer then becomes the
tensors, zero-copy). Limits are checked on the prefix before the rest is allocated; a message
whose first byte has arrived must be whole within ``timeout_s``; reading pauses while a few
messages wait to be answered, so a flooding client is slowed down, not buffered without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from coinfer.runtime.protocol import (
    PREFIX,
    ErrorCode,
    Kind,
    Limits,
    Message,
    ProtocolError,
    unpack_header,
    unpack_prefix,
)

Item = Message | ProtocolError | None  # None: the peer is gone
MAX_WAITING = 4


class FramedConnection(asyncio.BufferedProtocol):
    def __init__(
        self,
        limits: Limits,
        timeout_s: float | None,
        on_connect: Callable[[FramedConnection], None],
    ) -> None:
        self.limits = limits
        self.timeout_s = timeout_s
        self.on_connect = on_connect
        self.transport: asyncio.Transport | None = None
        self.items: asyncio.Queue[Item] = asyncio.Queue()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self._paused = False
        self._start_prefix()

    # -- reading: prefix, header, payload, each into a buffer of its exact size
    def _start_prefix(self) -> None:
        self._stage = "prefix"
        self._buf = bytearray(PREFIX.size)
        self._pos = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.on_connect(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._stopped:  # framing is lost: whatever else comes is read and dropped, so that
            return memoryview(self._scratch)  # closing does not reset the connection
        return memoryview(self._buf)[self._pos :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._stopped:
            return
        if self._stage == "prefix" and self._pos == 0 and nbytes and self.timeout_s is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.timeout_s, self._timed_out)
        self._pos += nbytes
        try:
            while not self._stopped and self._pos == len(self._buf):
                self._advance()
        except ProtocolError as exc:
            self._stop_with(exc)

    def _advance(self) -> None:
        if self._stage == "prefix":
            self._kind, header_len, payload_len = unpack_prefix(bytes(self._buf), self.limits)
            self._payload = bytearray(payload_len)
            self._stage, self._buf, self._pos = "header", bytearray(header_len), 0
        elif self._stage == "header":
            self._header = self._buf
            self._stage, self._buf, self._pos = "payload", self._payload, 0
        else:
            self._complete()

    def _complete(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        item: Item
        try:
            item = Message(Kind(self._kind), unpack_header(bytes(self._header)), self._payload)
        except ProtocolError as exc:  # framed correctly, so the connection stays usable
            item = exc
        self._start_prefix()
        self.items.put_nowait(item)
        if self.items.qsize() >= MAX_WAITING and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _timed_out(self) -> None:
        self._timer = None
        limit = self.timeout_s or 0.0
        self._stop_with(ProtocolError(ErrorCode.TIMEOUT, f"no whole message within {limit:g} s",
                                      True))  # fmt: skip

    def _stop_with(self, error: ProtocolError) -> None:
        """Framing is lost (or the peer too slow): no more reading; the error is answered."""
        self._stopped = True
        self._scratch = bytearray(64 * 1024)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.items.put_nowait(error)

    def eof_received(self) -> bool:
        if not self._stopped and (self._stage != "prefix" or self._pos):
            self._stop_with(ProtocolError(ErrorCode.BAD_FRAME, "connection closed mid-message",
                                          True))  # fmt: skip
        self.items.put_nowait(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.items.put_nowait(None)
        self._can_write.set()

    async def next(self) -> Item:
        item = await self.items.get()
        if self._paused and self.items.qsize() < MAX_WAITING // 2:
            self._paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return item

    # -- writing, with the transport's flow control
    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the peer is gone")
        self.transport.write(data)
        await self._can_write.wait()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def finish(self, grace_s: float = 1.0) -> None:
        """Close after an error without losing it: send FIN (the peer reads the error, then
        the end), keep reading and dropping until the peer closes, or ``grace_s`` passes.
        Closing at once with unread bytes would reset the connection and could drop it."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(grace_s, self.transport.close)
