"""The wire protocol between device and edge (DESIGN §5; byte layout in docs/protocol.md).

A message is a 12-byte prefix, a msgpack header, and the raw bytes of its tensors:

    magic b"CF" | version u8 | kind u8 | header length u32 | payload length u32   (big-endian)
    header: a msgpack map (request id, model, cut, exit, per-tensor dtype/shape/codec/bytes, ...)
    payload: the tensors' buffers one after another, each as its header entry describes

Nothing is ever unpickled: tensors travel as raw little-endian buffers of a whitelisted dtype,
optionally quantised and compressed (``wire.tensors``). Lengths are checked against
``Limits`` before anything is read; a receiver then takes memory only for what it expects
(docs/security.md).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

MAGIC = b"CF"
VERSION = 1
PREFIX = struct.Struct(">2sBBII")  # magic, version, kind, header length, payload length

# asyncio streams pause reading at their limit (64 KiB by default): a 1 MB boundary then crosses
# loopback in ~16 pause/resume rounds (0.7 ms against 0.2 ms with this limit, measured)
STREAM_LIMIT = 8 * 1024 * 1024


class Kind(enum.IntEnum):
    INFER = 1  # device → edge: run the back half of (model, cut, exit) on these tensors
    RESULT = 2  # edge → device: the outputs, with the edge's compute time
    ERROR = 3  # either way: code + message; the connection stays usable unless framing is lost
    PING = 4
    PONG = 5
    STATS = 6  # device → edge: ask for the server's statistics (reply: RESULT with a header only)
    CONTROL = 7  # change the edge's emulated slowdown at run time (when the server allows it)
    SYNC = 8  # device → edge: a federated learner's statistics (runtime.federation)


class ErrorCode(enum.IntEnum):
    BAD_FRAME = 1  # wrong magic or version: framing is lost, the connection is closed
    BAD_HEADER = 2  # not msgpack, not a map, or a field missing or of the wrong type
    TOO_LARGE = 3  # header or payload beyond the limits
    UNKNOWN_MODEL = 4
    BAD_CUT = 5  # cut or exit out of range for the model
    BAD_TENSOR = 6  # dtype, shape, codec or byte count wrong, or not what the cut expects
    UNAUTHORIZED = 7  # missing or wrong auth token
    INTERNAL = 8  # the back half raised
    TIMEOUT = 9  # the peer was too slow to send a whole message
    UNSUPPORTED = 10  # a message kind the peer does not handle (the connection is closed)
    BUSY = 11  # the server's memory budget or connection limit is reached: try again later
    WRONG_MODEL = 12  # the request's fingerprint is not the edge's model (weights, arguments)


class ProtocolError(Exception):
    """A message the receiver rejects; ``fatal`` when framing is lost (close the connection)."""

    def __init__(
        self, code: ErrorCode, message: str, fatal: bool = False, request_id: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal
        self.request_id = request_id  # echoed in the ERROR reply

    def __str__(self) -> str:
        return f"{self.code.name}: {self.args[0]}"


MAX_PEER_TEXT = 300  # characters of a peer's error message kept


@dataclass(frozen=True)
class Limits:
    """What a message may announce at most. A receiver takes memory only once it knows what
    it expects, so these are caps on lengths, not on what is allocated from them."""

    max_header_bytes: int = 16 * 1024  # 64 tensor entries take ~5 KiB
    max_payload_bytes: int = 256 * 1024 * 1024  # per message, all its tensors together
    max_tensors: int = 64
    max_dims: int = 8


@dataclass
class Message:
    """A whole message off the wire, as the parser (``wire.parser``) hands it over; on the edge
    with the budget bytes held for it until its reply is written, and what admission decided
    (``job``: the request, parsed and checked)."""

    kind: Kind
    header: dict[str, Any]
    payload: bytes | bytearray = b""
    reserved: int = 0
    job: Any = None
    size: int = 0  # bytes it took on the wire: prefix, header and payload

    @property
    def request_id(self) -> int | None:
        return request_id_of(self.header)


def pack(
    kind: Kind,
    header: Mapping[str, Any],
    payload: bytes | memoryview = b"",
    payload_len: int | None = None,
) -> bytes:
    """A whole message; with ``payload_len``, only its prefix and header, for a payload the
    caller writes itself (a large buffer is then never copied into the message)."""
    body = msgpack.packb(dict(header), use_bin_type=True)
    size = len(payload) if payload_len is None else payload_len
    return PREFIX.pack(MAGIC, VERSION, int(kind), len(body), size) + body + payload


def unpack_prefix(prefix: bytes, limits: Limits) -> tuple[Kind, int, int]:
    magic, version, kind, header_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"bad magic {magic!r}: not a coinfer peer", True)
    if version != VERSION:
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"protocol version {version}, this side speaks {VERSION}", True
        )
    if header_len > limits.max_header_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"header of {header_len} bytes > limit {limits.max_header_bytes}",
            True,
        )
    if payload_len > limits.max_payload_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"payload of {payload_len} bytes > limit {limits.max_payload_bytes}",
            True,
        )
    if kind not in Kind._value2member_map_:  # what follows cannot be trusted to be framed
        raise ProtocolError(ErrorCode.UNSUPPORTED, f"unknown message kind {kind}", True)
    return Kind(kind), header_len, payload_len


def unpack_header(body: bytes | bytearray) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types for garbage
        raise ProtocolError(ErrorCode.BAD_HEADER, f"header is not msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(ErrorCode.BAD_HEADER, "header must be a msgpack map")
    return header


def request_id_of(header: Mapping[str, Any]) -> int | None:
    """The request id to echo: an int (or absent); anything else is not echoed."""
    rid = header.get("id")
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None
