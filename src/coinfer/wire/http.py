"""HTTP/1.1 requests off a byte stream with the native parser's interface and guarantees, for
the Open Inference Protocol v2 (REST) on the edge (``wire.oip``, ``edge.v2``).

``HttpParser`` is a sibling of ``wire.parser.Parser``: the same ``buffer()``/``feed(n)``/
``decide()`` state machine with no I/O, the same ``Head`` handed over before a byte of the
tensors is read, the same budget charged for what a request makes it hold. So the edge's
connection, admission, slots, deadlines and budget serve both protocols unchanged. h11 parses
the request line and headers (a well-kept parser, strict on framing); the body is read here,
into buffers of exactly the announced size: the JSON inference header into one charged like a
native header, the binary tensors (``Inference-Header-Content-Length``, the binary tensor
extension) straight into the payload buffer admission gives.

Bytes that arrive past a request's end (a client that pipelines) are kept, charged to the
budget, and read as the next request once this one is answered (``pending``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11

from coinfer.wire.oip import HEADER_LENGTH
from coinfer.wire.parser import HEADER_EXPANSION, Admission, Budget, Event, Head, Unbounded
from coinfer.wire.protocol import ErrorCode, Kind, Limits, Message, ProtocolError

HEAD_BYTES = 16 * 1024  # request line and headers (Triton's and most servers' order: 8-16 KiB)


@dataclass(frozen=True)
class HttpRequest:
    """A request's line and headers (names lower-cased), and the lengths its body announces."""

    method: str
    target: str
    headers: dict[str, str]
    body_len: int
    json_len: int  # the JSON part of the body (the rest: binary tensors)


@dataclass
class Translated:
    """What a request is in the native protocol's terms: its kind and header (what admission
    judges), the binary bytes that follow its JSON part, and those carried inline (tensors the
    JSON held as numbers, already encoded)."""

    kind: Kind
    header: dict[str, Any]
    inline: bytes | None = None
    context: Any = None  # what its reply needs (the model's v2 name, the outputs asked)


Translate = Callable[[HttpRequest, Any], Translated]  # (request, its JSON or None)


def _fatal(code: ErrorCode, text: str) -> ProtocolError:
    return ProtocolError(code, text, True)


class HttpParser:
    """``buffer()`` to fill, ``feed(n)`` when n bytes arrived; after a ``Head``,
    ``decide(admission)``; ``translate`` turns each request into the native protocol's terms
    (``edge.v2``). A ``Head``'s and a message's ``header`` is the translated one, with the
    request's ``context`` under ``"v2"``."""

    def __init__(
        self,
        limits: Limits,
        translate: Translate,
        budget: Budget | None = None,
        scratch: bytearray | None = None,
    ) -> None:
        self.limits = limits
        self.translate = translate
        self.budget: Budget = budget if budget is not None else Unbounded()
        self._scratch = scratch
        self._head = bytearray(HEAD_BYTES)
        self._carry = bytearray()  # received past what the current stage needed
        self._carry_held = 0
        self.held = 0
        self.stopped = False
        self.context: Any = None  # the request being answered's (its reply is shaped by it)
        self._reset()

    def _reset(self) -> None:
        self.stage = "head"
        self._pos = 0
        self._buf: bytearray = self._head
        self._skip = 0
        self._pending: ProtocolError | None = None
        self._request: HttpRequest | None = None
        self._searched = 0
        self._absorbed = False

    @property
    def scratch(self) -> bytearray:
        if self._scratch is None:
            self._scratch = bytearray(64 * 1024)
        return self._scratch

    @property
    def started(self) -> bool:
        return self.stage != "head" or self._pos > 0 or bool(self._carry)

    @property
    def pending(self) -> bool:
        """Bytes of a next request arrived with this one: ``feed(0)`` reads them."""
        waiting = bool(self._carry) or self._absorbed
        return waiting and self.stage == "head" and not self.stopped

    def buffer(self) -> memoryview:
        if self.stage == "head":
            self._absorb()  # what came before goes first: new bytes land after it
        if self.stage == "decide":
            raise RuntimeError("decide() on the request's header before reading on")
        if self.stopped:
            return memoryview(self.scratch)
        if self.stage == "skip":
            return memoryview(self.scratch)[: min(len(self.scratch), self._skip)]
        return memoryview(self._buf)[self._pos :]

    # -- reading
    def feed(self, nbytes: int) -> Event:
        """Account for ``nbytes`` written into ``buffer()`` (0: go on with bytes kept from
        before): a ``Head`` once a request's JSON is parsed, a message or an error once one is
        complete (a fatal error stops the parser)."""
        if self.stopped:
            return None
        try:
            if self.stage == "skip":
                return self._skipped(nbytes)
            if self.stage == "head":
                return self._read_head(nbytes)
            self._pos += nbytes
            return self._advance()
        except ProtocolError as exc:
            return self.stop(exc)

    def _skipped(self, nbytes: int) -> Event:
        self._skip -= nbytes
        if self._skip > 0:
            return None
        error = self._pending
        self._reset()
        return error

    def _absorb(self) -> None:
        """Kept bytes (a request that came with the one before) into the head buffer."""
        if not self._carry or self._pos:
            return
        self._charge(len(self._head))
        take = self._carry[: len(self._head)]
        self._head[: len(take)] = take
        self._take_carry(len(take))
        self._pos = len(take)
        self._searched = 0
        self._absorbed = True  # in the buffer, not yet looked at: feed(0) does

    def _read_head(self, nbytes: int) -> Event:
        if self._pos == 0 and not self._carry:
            if not nbytes:
                return None
            self._charge(len(self._head))
            self._searched = 0
        self._absorb()
        self._absorbed = False
        searched = max(0, self._searched - 3)
        self._pos += nbytes
        self._searched = self._pos
        end = self._head.find(b"\r\n\r\n", searched, self._pos)
        if end < 0:
            if self._pos >= len(self._head):
                raise _fatal(ErrorCode.TOO_LARGE, f"request headers beyond {HEAD_BYTES} bytes")
            return None
        end += 4
        request = self._parse_head(bytes(self._head[:end]))
        self._keep(self._head[end : self._pos])  # ahead of anything kept already
        self._request = request
        if request.json_len > self.limits.max_header_bytes:
            raise _fatal(
                ErrorCode.TOO_LARGE,
                f"a JSON inference header of {request.json_len} bytes: at most "
                f"{self.limits.max_header_bytes} (send tensors with the binary tensor extension)",
            )
        if request.body_len - request.json_len > self.limits.max_payload_bytes:
            raise _fatal(ErrorCode.TOO_LARGE, f"a body of {request.body_len} bytes")
        self._charge(request.json_len * HEADER_EXPANSION)
        self.stage, self._buf, self._pos = "json", bytearray(request.json_len), 0
        return self._advance()

    def _parse_head(self, raw: bytes) -> HttpRequest:
        reader = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_BYTES)
        reader.receive_data(raw)
        try:
            event = reader.next_event()
        except h11.RemoteProtocolError as exc:
            raise _fatal(ErrorCode.BAD_FRAME, f"not an HTTP/1.1 request: {exc}") from None
        if not isinstance(event, h11.Request):
            raise _fatal(ErrorCode.BAD_FRAME, "not an HTTP/1.1 request")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
        if "chunked" in headers.get("transfer-encoding", ""):
            raise _fatal(ErrorCode.BAD_FRAME, "chunked bodies are not taken: send Content-Length")
        body_len = int(headers.get("content-length", "0"))  # h11 checked it is a number
        json_len = body_len
        # (a request with no body may still carry one: tritonclient adds it to the headers
        # dict a caller passes, and sends it with every later call that reuses the dict)
        if HEADER_LENGTH in headers and body_len:
            text = headers[HEADER_LENGTH]
            if not text.isdigit() or int(text) > body_len:
                raise _fatal(
                    ErrorCode.BAD_HEADER,
                    f"{HEADER_LENGTH} {text!r} must be a byte count within the body's {body_len}",
                )
            json_len = int(text)
        return HttpRequest(
            event.method.decode("ascii", "replace"),
            event.target.decode("latin-1"),
            headers,
            body_len,
            json_len,
        )

    def _fill(self) -> bool:
        """Kept bytes (that came with the headers) into the current buffer: is it full?"""
        if self._carry:
            room = len(self._buf) - self._pos
            take = self._carry[:room]
            self._buf[self._pos : self._pos + len(take)] = take
            self._pos += len(take)
            self._take_carry(len(take))
        return self._pos >= len(self._buf)

    def _advance(self) -> Event:
        if not self._fill():
            return None
        if self.stage == "json":
            return self._translate()
        return self._whole()

    def _translate(self) -> Event:
        request = self._request
        assert request is not None
        body: Any = None
        if request.json_len:
            try:
                body = json.loads(self._buf)
            except (ValueError, RecursionError) as exc:
                return self._refuse(ProtocolError(ErrorCode.BAD_HEADER, f"not JSON: {exc}"))
        self._buf = bytearray()
        try:
            done = self.translate(request, body)
        except ProtocolError as exc:
            return self._refuse(exc)
        self._translated = done
        self.context = done.context
        inline = done.inline or b""
        binary = request.body_len - request.json_len
        if inline and binary:
            return self._refuse(
                ProtocolError(ErrorCode.BAD_TENSOR, "tensors as JSON numbers and as binary both")
            )
        self.stage = "decide"
        return Head(done.kind, done.header, len(inline) or binary, protocol="v2")

    def _refuse(self, error: ProtocolError) -> Event:
        """A request answered with ``error``: what is left of its body is read and dropped."""
        self.release()
        assert self._request is not None
        return self._drop(self._request.body_len - self._request.json_len, error)

    def _drop(self, left: int, error: ProtocolError) -> ProtocolError | None:
        kept = min(left, len(self._carry))
        self._take_carry(kept)
        left -= kept
        if left:
            self.stage, self._skip, self._pending = "skip", left, error
            return None
        self._reset()
        return error

    def decide(self, admission: Admission) -> Message | ProtocolError | None:
        """Go on after a ``Head``: read the binary tensors into ``admission.payload``, or
        drop them and report ``admission.error``."""
        if self.stage != "decide":
            raise RuntimeError("decide() answers a Head, and only once")
        done, request = self._translated, self._request
        assert request is not None
        binary = request.body_len - request.json_len
        if admission.error is not None:
            self.release()
            self.context = done.context  # the error is the request's: its reply says so
            error = admission.error
            if error.fatal:
                return self.stop(error)
            return self._drop(binary, error)
        self.held += admission.reserved
        self._job = admission.job
        self._header = done.header if admission.keep_header else {"id": None}
        payload = admission.payload if admission.payload is not None else bytearray()
        size = len(done.inline) if done.inline else binary
        if len(payload) != size:
            return self.stop(ProtocolError(ErrorCode.INTERNAL, "payload buffer of the wrong size"))
        if done.inline:
            payload[:] = done.inline
            return self._whole(payload)
        self.stage, self._buf, self._pos = "payload", payload, 0
        return self._whole() if self._fill() else None

    def _whole(self, payload: bytearray | None = None) -> Message:
        request = self._request
        assert request is not None
        header = dict(self._header)
        header["v2"] = self.context
        message = Message(
            Kind(self._translated.kind),
            header,
            payload if payload is not None else self._buf,
            self.held,
            self._job,
            request.body_len,
        )
        self.held = 0
        self._reset()
        return message

    # -- memory
    def _charge(self, nbytes: int) -> None:
        if not self.budget.reserve(nbytes):
            raise ProtocolError(
                ErrorCode.BUSY, "the server's memory budget is in use: try again later", True
            )
        self.held += nbytes

    def _keep(self, data: bytearray | memoryview) -> None:
        if not data:
            return
        if not self.budget.reserve(len(data)):
            raise _fatal(ErrorCode.BUSY, "the server's memory budget is in use: try again later")
        self._carry[0:0] = data
        self._carry_held += len(data)

    def _take_carry(self, nbytes: int) -> None:
        del self._carry[:nbytes]
        if not self._carry:
            self.budget.release(self._carry_held)
            self._carry_held = 0

    def stop(self, error: ProtocolError) -> ProtocolError:
        self.release()
        self._carry.clear()
        self.budget.release(self._carry_held)
        self._carry_held = 0
        self.stopped = True
        self.stage = "stopped"
        error.fatal = True
        return error

    def release(self) -> None:
        self.budget.release(self.held)
        self.held = 0
