"""The wire protocol between device and edge (DESIGN §5; byte layout in docs/protocol.md).

A message is a 12-byte prefix, a msgpack header, and the raw bytes of its tensors:

    magic b"CF" | version u8 | kind u8 | header length u32 | payload length u32   (big-endian)
    header: a msgpack map (request id, model, cut, exit, per-tensor dtype/shape/codec/bytes, ...)
    payload: the tensors' buffers one after another, each as its header entry describes

Nothing is ever unpickled: tensors travel as raw little-endian buffers of a whitelisted dtype,
optionally quantised and compressed (``runtime.tensors``). Lengths are checked against
``Limits`` before anything is read; a receiver then takes memory only for what it expects
(docs/security.md).
"""

from __future__ import annotations

import asyncio
import enum
import ssl
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

    @classmethod
    def from_reply(cls, header: Mapping[str, Any]) -> ProtocolError:
        """The error an ERROR reply carries, as this side's exception (a peer's text is
        shortened: it ends up in logs)."""
        raw_code = header.get("code")
        code = ErrorCode.INTERNAL
        if isinstance(raw_code, int) and raw_code in ErrorCode._value2member_map_:
            code = ErrorCode(raw_code)
        text = header.get("message")
        text = text if isinstance(text, str) else "the peer reported an error"
        return cls(code, text[:MAX_PEER_TEXT] + ("..." if len(text) > MAX_PEER_TEXT else ""))


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
    kind: Kind
    header: dict[str, Any]
    payload: bytes | bytearray = b""


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


async def read_message(
    reader: asyncio.StreamReader, limits: Limits, timeout_s: float | None = None
) -> Message | None:
    """The next message, or None at a clean end of stream. An idle peer may wait as long as it
    likes; once a message's first byte has arrived, the whole message must follow within
    ``timeout_s`` (a peer that stalls or trickles gets a fatal TIMEOUT), and a peer that closes
    mid-message a fatal BAD_FRAME."""
    first = await reader.read(1)
    if not first:
        return None

    async def rest() -> Message:
        try:
            prefix = first + await reader.readexactly(PREFIX.size - 1)
            kind, header_len, payload_len = unpack_prefix(prefix, limits)
            body = await reader.readexactly(header_len)
            payload = await reader.readexactly(payload_len)
        except asyncio.IncompleteReadError:
            raise ProtocolError(
                ErrorCode.BAD_FRAME, "connection closed mid-message", True
            ) from None
        return Message(kind, unpack_header(body), payload)

    if timeout_s is None:
        return await rest()
    try:
        return await asyncio.wait_for(rest(), timeout_s)
    except TimeoutError:
        raise ProtocolError(
            ErrorCode.TIMEOUT, f"no whole message within {timeout_s:g} s", True
        ) from None


def request_id_of(header: Mapping[str, Any]) -> int | None:
    """The request id to echo: an int (or absent); anything else is not echoed."""
    rid = header.get("id")
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


def error_message(request_id: Any, error: ProtocolError) -> bytes:
    return pack(
        Kind.ERROR,
        {
            "id": request_id,
            "code": int(error.code),
            "error": error.code.name,
            "message": str(error.args[0]),
        },
    )


async def request_once(
    address: tuple[str, int],
    message: bytes,
    limits: Limits,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 10.0,
) -> Message:
    """One request on a connection of its own and its reply, all within ``timeout_s``
    (TimeoutError past it; ConnectionError if the edge closes without a reply)."""
    host, port = address
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls else None
        )
        try:
            writer.write(message)
            await writer.drain()
            reply = await read_message(reader, limits)
        finally:
            writer.transport.abort()
    if reply is None:
        raise ConnectionError("the edge closed the connection")
    return reply
