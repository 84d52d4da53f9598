"""One peer's connection to the edge: the asyncio ``BufferedProtocol`` around the wire's
``Parser``, with a deadline on everything.

The kernel writes straight into the parser's buffers (the payload's buffer then becomes the
tensors, zero-copy). A connection reads one message at a time — reading pauses from a whole
message until its reply is written — and every state has a deadline: a message must be whole
within ``read_timeout_s`` of its first byte, a connection with no message in progress is closed
after ``idle_timeout_s``, and a reply the peer does not take within ``write_timeout_s`` drops
the connection and frees what it held. What to do with a message is decided from its header
alone, by the server's ``admit``, before a byte of its payload is read.

With TLS the handshake happens here too (``start_tls`` on the accepted connection, not in the
listener), so that a connection takes its slot when it is accepted: a peer that never finishes
its handshake is a stranger like any other, evicted first, and gone at the read timeout.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coinfer.edge.logins import LoginThrottle
from coinfer.wire.http import HttpParser
from coinfer.wire.messages import error_message
from coinfer.wire.parser import Admission, Head, Parser
from coinfer.wire.protocol import ErrorCode, Kind, Message, ProtocolError

CLOSE_GRACE_S = 1.0  # a closing connection's peer has this long to read our last words
DRAIN_BYTES = 1024 * 1024  # after a fatal error, at most this much more is read and dropped

Item = Message | ProtocolError | None  # None: the peer is gone
Admit = Callable[[Head], Admission]
ErrorReply = Callable[[ProtocolError], bytes]  # an error as the connection's protocol says it


def native_error(error: ProtocolError) -> bytes:
    return error_message(error.request_id, error)


@dataclass(frozen=True)
class Deadlines:
    read_timeout_s: float | None = 10.0  # from a message's first byte to its last
    idle_timeout_s: float | None = 60.0  # no message in progress and none being answered
    write_timeout_s: float = 10.0  # a reply not taken by the peer in this time drops it
    login_timeout_s: float | None = 30.0  # from connecting to a request past the token check
    min_rate_bytes_s: float = 1024.0  # a message in progress arrives at least this fast...
    rate_grace_s: float = 1.0  # ...once this long has passed since its first byte


RATE_CHECK_S = 1.0  # how often a message in progress is checked for progress


class FramedConnection(asyncio.BufferedProtocol):
    """One peer's connection: ``await next()`` for its messages, ``await write()`` a reply,
    then ``done()`` to read the next."""

    def __init__(
        self,
        parser: Parser | HttpParser,
        admit: Admit,
        deadlines: Deadlines,
        on_made: Callable[[FramedConnection], None],
        on_lost: Callable[[FramedConnection], None],
        events: collections.Counter[str],
        logins: LoginThrottle | None = None,
        tls: ssl.SSLContext | None = None,
        reply_error: ErrorReply = native_error,
    ) -> None:
        self.parser = parser
        self.reply_error = reply_error
        self.admit = admit
        self.deadlines = deadlines
        self.on_made = on_made
        self.on_lost = on_lost
        self.events = events
        self.half_close = tls is None  # TLS cannot keep a half-closed connection
        self.logins = logins
        self.tls = tls
        self.handshaking = False  # TLS: accepted, its handshake not yet done
        self._handshake: asyncio.Task[None] | None = None  # held: the loop keeps weak refs
        self._lost = False
        self.transport: asyncio.Transport | None = None
        self.source = ""  # the peer's address (slots and failed logins are counted by it)
        self.items: asyncio.Queue[Item] = asyncio.Queue()
        self.busy = False  # a message is being answered
        self.proven = False  # a request of the peer's (not a PING) passed the token check
        self.last_active = time.monotonic()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._read_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._drained = 0
        self._paused = False
        self._login_timer: asyncio.TimerHandle | None = None
        self._received = 0  # bytes read on this connection
        self._message_start = (0.0, 0)  # when the message in progress started, bytes read then

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
        peer = transport.get_extra_info("peername")
        self.source = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        if self.tls is None:
            self._limit_writes(transport)
        else:  # nothing is read in the clear: the handshake takes the connection over
            transport.pause_reading()
            self.handshaking = True
        self._arm_idle()
        loop = asyncio.get_running_loop()
        if self.deadlines.login_timeout_s is not None:
            self._login_timer = loop.call_later(self.deadlines.login_timeout_s, self._no_login)
        self.on_made(self)
        if self.tls is not None and not self.closing:
            self._handshake = loop.create_task(self._start_tls(transport, self.tls))

    @staticmethod
    def _limit_writes(transport: asyncio.Transport) -> None:
        """Pause writing whenever anything is left unsent: a reply counts against the budget
        until the kernel has it all, and a peer that never reads is noticed (high=1: TLS
        transports pause at size >= high, plain ones at size > high)."""
        transport.set_write_buffer_limits(high=1, low=0)

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        """The handshake, within the read timeout of being accepted. Its first records may be
        read before this resumes; they use no transport (no message can be in progress yet)."""
        loop = asyncio.get_running_loop()
        try:
            if self.closing:  # evicted before its handshake began
                raise ConnectionAbortedError
            secured = await loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.deadlines.read_timeout_s,
            )
        except Exception:  # failed or timed out (start_tls closed it): this peer only
            secured = None
        self.handshaking = False
        if secured is None or self._lost:  # failed, or closed while handshaking (evicted)
            self.events["handshakes_failed"] += 1
            raw.abort()
            self.connection_lost(None)  # (once: SSLProtocol may or may not have told us)
            return
        self.transport = secured
        self._limit_writes(secured)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.parser.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self.parser.stopped:  # read and dropped, so that the end is a FIN, not a reset;
            self._drained += nbytes  # but a peer that floods is not read any further
            if self._drained > DRAIN_BYTES and self.transport is not None:
                self.transport.pause_reading()
            return
        self._received += nbytes
        if nbytes and not self.parser.started:
            if self.busy:  # the peer sends ahead: nothing more is read until it is answered
                self._pause()  # (its deadline starts then)
            else:
                self._start_deadline()
        item = self.parser.feed(nbytes)
        if isinstance(item, Head):
            decision = self._login(item)
            if decision.error is None and item.kind is not Kind.PING:
                self.proven = True  # past the token: a device's, not a stranger's
                self._cancel_login()
            item = self.parser.decide(decision)
        if item is None:
            return
        self._cancel_read()
        if not (isinstance(item, ProtocolError) and item.fatal):
            self.busy = True  # one message at a time: the next waits for done()
        self.items.put_nowait(item)

    def _login(self, head: Head) -> Admission:
        """The server's decision, unless this stranger's address is blocked for failed logins
        (then refused unchecked); a wrong token (not a missing one) counts against the
        address."""
        if self.proven or self.logins is None or head.kind is Kind.PING:
            return self.admit(head)
        wait = self.logins.blocked(self.source)
        if wait > 0:
            self.events["logins_throttled"] += 1
            return Admission(
                error=ProtocolError(
                    ErrorCode.UNAUTHORIZED,
                    f"too many wrong tokens from {self.source}: try again in {wait:.1f} s",
                    True,
                )
            )
        decision = self.admit(head)
        error = decision.error
        guessed = head.header.get("token") is not None  # no token at all guesses nothing
        if guessed and error is not None and error.code is ErrorCode.UNAUTHORIZED:
            self.logins.failed(self.source)
        return decision

    def _start_deadline(self) -> None:
        """The message in progress is checked every RATE_CHECK_S (a timer that a message
        arriving whole in time never sees fire): whole within the read timeout, and after the
        grace at least ``min_rate_bytes_s`` on average, as web servers bound slow bodies."""
        self._message_start = (time.monotonic(), self._received)
        self._arm_check(RATE_CHECK_S)

    def _arm_check(self, delay: float) -> None:
        timeout = self.deadlines.read_timeout_s
        if timeout is not None:
            delay = min(delay, timeout - (time.monotonic() - self._message_start[0]))
        loop = asyncio.get_running_loop()
        self._read_timer = loop.call_later(max(0.0, delay), self._check_progress)

    def _check_progress(self) -> None:
        self._read_timer = None
        if self.parser.stopped:
            return
        started, received_then = self._message_start
        elapsed = time.monotonic() - started
        timeout = self.deadlines.read_timeout_s
        if timeout is not None and elapsed >= timeout * 0.999:
            self._timed_out()
            return
        owed = self.deadlines.min_rate_bytes_s * (elapsed - self.deadlines.rate_grace_s)
        got = self._received - received_then
        if not self._paused and got < owed:  # (paused: the peer sent ahead and waits for us)
            self.events["slow_messages"] += 1
            rate = got / elapsed if elapsed > 0 else 0.0
            limit = self.deadlines.min_rate_bytes_s
            self.items.put_nowait(
                self.parser.stop(
                    ProtocolError(
                        ErrorCode.TIMEOUT,
                        f"a message arriving at {rate:.0f} bytes/s, slower than the "
                        f"{limit:g} bytes/s a connection must keep up",
                    )
                )
            )
            return
        self._arm_check(RATE_CHECK_S)

    def _no_login(self) -> None:
        """No request past the token within the login timeout: a stranger keeps no slot."""
        self._login_timer = None
        if self.proven or self.closing:
            return
        self.events["login_timeouts"] += 1
        if self.parser.started or self.busy:  # say why, then end
            self.items.put_nowait(
                self.parser.stop(
                    ProtocolError(
                        ErrorCode.TIMEOUT,
                        f"no request with the token within "
                        f"{self.deadlines.login_timeout_s:g} s of connecting",
                    )
                )
            )
        else:
            self.close()

    def _cancel_login(self) -> None:
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None

    def _pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _timed_out(self) -> None:
        self._read_timer = None
        limit = self.deadlines.read_timeout_s or 0.0
        self.events["read_timeouts"] += 1
        self.items.put_nowait(
            self.parser.stop(
                ProtocolError(ErrorCode.TIMEOUT, f"no whole message within {limit:g} s")
            )
        )

    def eof_received(self) -> bool:
        if self.parser.started and not self.parser.stopped:
            self._cancel_read()
            self.items.put_nowait(
                self.parser.stop(
                    ProtocolError(ErrorCode.BAD_FRAME, "connection closed mid-message")
                )
            )
        self.items.put_nowait(None)
        return self.half_close  # keep the transport to answer; the handler then closes it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._cancel_read()
        self._cancel_idle()
        self._cancel_login()
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
        if self.parser.pending:  # the next request came with the last (HTTP pipelining)
            self.buffer_updated(0)

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

    async def write(self, data: bytes | Sequence[bytes | memoryview]) -> None:
        """Hand ``data`` (or its pieces, in order) to the kernel; a peer that does not take it
        within the write timeout is dropped (ConnectionError), and what was queued for it is
        freed."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the peer is gone")
        if isinstance(data, bytes):
            self.transport.write(data)
        else:
            self.transport.writelines(data)
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
        """Say ``data`` (an ERROR) and end, reading nothing more from this peer (during a TLS
        handshake there is no way to say it: just end)."""
        self.parser.stop(ProtocolError(ErrorCode.BUSY, "refused"))
        if self.handshaking:
            self.close()
            return
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
