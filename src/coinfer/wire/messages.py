"""The protocol's messages as typed values, each parsed and checked once where it is read.

A request is parsed by the edge (``parse_request``), a reply by the device that asked for it
(``InferResult.parse`` ...): every field's type and range is checked here, so neither side acts
on a raw header. What needs the receiver's own knowledge — a tensor entry against what the cut
takes (``wire.tensors``), a model against what is served, an edge time against what the device
waited — the receiver checks with it. ``encode`` writes any of them; the byte layout is in
docs/protocol.md. SYNC and its reply live in ``wire.sync``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeGuard

from coinfer.graph.fingerprint import FINGERPRINT_BYTES
from coinfer.wire.protocol import (
    MAX_PEER_TEXT,
    ErrorCode,
    Kind,
    ProtocolError,
    pack,
    request_id_of,
)

MAX_SLOWDOWN = 1000.0  # the emulated edge may be at most this many times slower than its host


class WireMessage(Protocol):
    """What every typed message is: its kind, and its header as the wire carries it."""

    kind: ClassVar[Kind]

    def header(self) -> dict[str, Any]: ...


def encode(
    message: WireMessage, payload: bytes | memoryview = b"", payload_len: int | None = None
) -> bytes:
    """The message on the wire (``payload_len``: only prefix and header, for a payload the
    caller writes itself)."""
    return pack(message.kind, message.header(), payload, payload_len)


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def token_of(header: Mapping[str, Any]) -> str | None:
    """The token a header carries (anything but a string is no token)."""
    token = header.get("token")
    return token if isinstance(token, str) else None


def _with_token(header: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        header["token"] = token
    return header


def check_slowdown(value: object) -> float:
    """A slowdown factor: a finite number in [1, MAX_SLOWDOWN] (ValueError otherwise)."""
    if not is_real(value):
        raise ValueError(f"the slowdown must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and 1.0 <= value <= MAX_SLOWDOWN):
        raise ValueError(
            f"the slowdown must be in [1, {MAX_SLOWDOWN:g}] (1 = this host), got {value!r}"
        )
    return float(value)


@dataclass(frozen=True)
class Infer:
    """Device → edge: run the back half of (model, cut, exit) on the payload's tensors."""

    id: int | None
    model: str
    cut: int
    exit: int | None
    fingerprint: bytes | None  # None: a v2 request that names its model only (edge.v2)
    tensors: Any = ()  # the header's entries: checked against what the cut takes, by the edge
    token: str | None = None
    kind: ClassVar[Kind] = Kind.INFER

    def header(self) -> dict[str, Any]:
        return _with_token(
            {
                "id": self.id,
                "model": self.model,
                "cut": self.cut,
                "exit": self.exit,
                "fp": self.fingerprint,
                "tensors": self.tensors,
            },
            self.token,
        )

    @classmethod
    def parse(cls, header: Mapping[str, Any], fingerprint_required: bool = True) -> Infer:
        model = header.get("model")
        if not isinstance(model, str):
            raise ProtocolError(ErrorCode.BAD_HEADER, "INFER needs 'model' (a string)")
        exit, cut = header.get("exit"), header.get("cut")
        if exit is not None and not is_int(exit):
            raise ProtocolError(
                ErrorCode.BAD_CUT, f"exit {exit!r} of {model!r} must be nil or an exit's number"
            )
        fp = header.get("fp")
        if not (fp is None and not fingerprint_required) and (
            not isinstance(fp, bytes) or len(fp) != FINGERPRINT_BYTES
        ):
            raise ProtocolError(
                ErrorCode.BAD_HEADER,
                f"INFER needs 'fp': the {FINGERPRINT_BYTES}-byte fingerprint of the device's model",
            )
        if not is_int(cut):
            raise ProtocolError(ErrorCode.BAD_CUT, f"cut {cut!r} of {model!r} must be an integer")
        return cls(
            request_id_of(header), model, cut, exit, fp, header.get("tensors"), token_of(header)
        )


@dataclass(frozen=True)
class InferResult:
    """Edge → device: a back half's outputs (the payload) and the edge's compute time."""

    id: int | None
    edge_s: float
    tensors: Any = ()  # the outputs' entries: checked against the model's outputs, by the device
    kind: ClassVar[Kind] = Kind.RESULT

    def header(self) -> dict[str, Any]:
        return {"id": self.id, "edge_s": self.edge_s, "tensors": self.tensors}

    @classmethod
    def parse(cls, header: Mapping[str, Any], request_id: int) -> InferResult:
        """The RESULT of request ``request_id`` (BAD_HEADER for another's, or no edge time)."""
        answered = header.get("id")
        if not (is_int(answered) and answered == request_id):
            raise ProtocolError(
                ErrorCode.BAD_HEADER, f"the edge answered request {answered!r}, not {request_id}"
            )
        edge_s = header.get("edge_s")
        if not is_real(edge_s):
            raise ProtocolError(ErrorCode.BAD_HEADER, f"edge_s {edge_s!r} is not a number")
        return cls(request_id, float(edge_s), header.get("tensors"))


@dataclass(frozen=True)
class Ping:
    id: int | None = 0
    kind: ClassVar[Kind] = Kind.PING

    def header(self) -> dict[str, Any]:
        return {"id": self.id}


@dataclass(frozen=True)
class Pong:
    id: int | None = 0
    kind: ClassVar[Kind] = Kind.PONG

    def header(self) -> dict[str, Any]:
        return {"id": self.id}


@dataclass(frozen=True)
class StatsRequest:
    """Device → edge: the server's statistics (what it serves, how it is doing)."""

    id: int | None = 0
    token: str | None = None
    kind: ClassVar[Kind] = Kind.STATS

    def header(self) -> dict[str, Any]:
        return _with_token({"id": self.id}, self.token)


@dataclass(frozen=True)
class StatsReply:
    id: int | None
    stats: dict[str, Any]
    slowdown: float
    kind: ClassVar[Kind] = Kind.RESULT

    def header(self) -> dict[str, Any]:
        return {"id": self.id, "stats": self.stats, "slowdown": self.slowdown}

    @classmethod
    def parse(cls, header: Mapping[str, Any]) -> StatsReply:
        stats, slowdown = header.get("stats"), header.get("slowdown", 1.0)
        if not isinstance(stats, dict):
            raise ProtocolError(ErrorCode.BAD_HEADER, "the edge's STATS reply has no stats")
        if not is_real(slowdown):
            raise ProtocolError(ErrorCode.BAD_HEADER, f"STATS: slowdown {slowdown!r}")
        return cls(request_id_of(header), stats, float(slowdown))


@dataclass(frozen=True)
class Control:
    """Change the edge's emulated slowdown at run time (where the server allows it)."""

    slowdown: float
    id: int | None = 0
    token: str | None = None
    kind: ClassVar[Kind] = Kind.CONTROL

    def header(self) -> dict[str, Any]:
        return _with_token({"id": self.id, "slowdown": self.slowdown}, self.token)

    @classmethod
    def parse(cls, header: Mapping[str, Any]) -> Control:
        try:
            slowdown = check_slowdown(header.get("slowdown"))
        except ValueError as exc:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"CONTROL: {exc}") from None
        return cls(slowdown, request_id_of(header), token_of(header))


@dataclass(frozen=True)
class ControlReply:
    id: int | None
    slowdown: float
    kind: ClassVar[Kind] = Kind.RESULT

    def header(self) -> dict[str, Any]:
        return {"id": self.id, "slowdown": self.slowdown}

    @classmethod
    def parse(cls, header: Mapping[str, Any]) -> ControlReply:
        try:
            slowdown = check_slowdown(header.get("slowdown"))
        except ValueError as exc:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"CONTROL's reply: {exc}") from None
        return cls(request_id_of(header), slowdown)


@dataclass(frozen=True)
class Error:
    """Either way: what was wrong with a request (the connection stays usable unless framing
    is lost)."""

    id: int | None
    code: ErrorCode
    message: str
    kind: ClassVar[Kind] = Kind.ERROR

    def header(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": int(self.code),
            "error": self.code.name,
            "message": self.message,
        }

    @classmethod
    def of(cls, request_id: int | None, error: ProtocolError) -> Error:
        return cls(request_id, error.code, str(error.args[0]))

    @classmethod
    def parse(cls, header: Mapping[str, Any]) -> Error:
        """A peer's ERROR (an unknown code reads as INTERNAL; its text is shortened: it ends up
        in logs)."""
        raw = header.get("code")
        code = (
            ErrorCode(raw)
            if is_int(raw) and raw in ErrorCode._value2member_map_
            else (ErrorCode.INTERNAL)
        )
        text = header.get("message")
        text = text if isinstance(text, str) else "the peer reported an error"
        if len(text) > MAX_PEER_TEXT:
            text = text[:MAX_PEER_TEXT] + "..."
        return cls(request_id_of(header), code, text)

    def exception(self) -> ProtocolError:
        return ProtocolError(self.code, self.message)


def error_message(request_id: int | None, error: ProtocolError) -> bytes:
    """An ERROR reply naming ``error``."""
    return encode(Error.of(request_id, error))


def raise_for_error(kind: Kind, header: Mapping[str, Any]) -> None:
    """A reply that is an ERROR, as this side's ProtocolError."""
    if kind is Kind.ERROR:
        raise Error.parse(header).exception()
