"""The wire protocol between device and edge (DESIGN §5; byte layout in docs/protocol.md).

A message is a 12-byte prefix, a msgpack header, and the raw bytes of its tensors:

    magic b"CF" | version u8 | kind u8 | header length u32 | payload length u32   (big-endian)
    header: a msgpack map (request id, model, cut, exit, per-tensor dtype/shape/codec/bytes, ...)
    payload: the tensors' buffers one after another, each as its header entry describes

Nothing is ever unpickled: tensors travel as raw little-endian buffers of a whitelisted dtype,
optionally quantised (fp16, or int8 with a per-tensor scale and zero point) and compressed (lz4
or zstd). Sizes are checked against ``Limits`` before anything is read or decoded, so a peer
cannot make the other side allocate more than the limits allow.
"""

from __future__ import annotations

import asyncio
import enum
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import torch

MAGIC = b"CF"
VERSION = 1
PREFIX = struct.Struct(">2sBBII")  # magic, version, kind, header length, payload length

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
CODECS = ("none", "lz4", "zstd")
# asyncio streams pause reading at their limit (64 KiB by default): a 1 MB boundary then crosses
# loopback in ~16 pause/resume rounds (0.7 ms against 0.2 ms with this limit, measured)
STREAM_LIMIT = 8 * 1024 * 1024
QUANTS = ("none", "fp16", "int8")


class Kind(enum.IntEnum):
    INFER = 1  # device → edge: run the back half of (model, cut, exit) on these tensors
    RESULT = 2  # edge → device: the outputs, with the edge's compute time
    ERROR = 3  # either way: code + message; the connection stays usable unless framing is lost
    PING = 4
    PONG = 5
    STATS = 6  # device → edge: ask for the server's statistics (reply: RESULT with a header only)
    CONTROL = 7  # change the edge's emulated slowdown at run time (when the server allows it)


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
    UNSUPPORTED = 10  # a message kind the peer does not handle


class ProtocolError(Exception):
    """A message the receiver rejects; ``fatal`` when framing is lost (close the connection)."""

    def __init__(self, code: ErrorCode, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.fatal = fatal

    def __str__(self) -> str:
        return f"{self.code.name}: {self.args[0]}"

    @classmethod
    def from_reply(cls, header: Mapping[str, Any]) -> ProtocolError:
        """The error an ERROR reply carries, as this side's exception."""
        try:
            code = ErrorCode(int(header.get("code", ErrorCode.INTERNAL)))
        except (TypeError, ValueError):
            code = ErrorCode.INTERNAL
        return cls(code, str(header.get("message", "the peer reported an error")))


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 64 * 1024
    max_payload_bytes: int = 256 * 1024 * 1024
    max_tensors: int = 64
    max_dims: int = 8


@dataclass
class Message:
    kind: Kind
    header: dict[str, Any]
    payload: bytes | bytearray = b""
    tensors: list[torch.Tensor] = field(default_factory=list)


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
    try:
        return Kind(kind), header_len, payload_len
    except ValueError:
        raise ProtocolError(ErrorCode.UNSUPPORTED, f"unknown message kind {kind}") from None


def unpack_header(body: bytes) -> dict[str, Any]:
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


def tensors_of(value: Any) -> list[torch.Tensor]:
    """A model's output (a tensor, or tuples/lists of them) as the flat list that travels."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_of(v)]
    raise TypeError(f"a model output must be tensors, got {type(value).__name__}")


def _compress(data: bytes | memoryview, codec: str) -> bytes | memoryview:
    if codec == "lz4":
        import lz4.frame

        return bytes(lz4.frame.compress(data))
    if codec == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return data


def _decompress(data: memoryview, codec: str, expected: int) -> bytes | memoryview:
    out: bytes | memoryview
    try:
        if codec == "lz4":
            import lz4.frame

            out = bytes(lz4.frame.decompress(data))
        elif codec == "zstd":
            import zstandard

            out = bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=expected))
        else:
            out = data
    except Exception as exc:
        raise ProtocolError(ErrorCode.BAD_TENSOR, f"cannot decompress ({codec}): {exc}") from None
    if len(out) != expected:
        raise ProtocolError(
            ErrorCode.BAD_TENSOR,
            f"{codec} data decompressed to {len(out)} bytes, expected {expected}",
        )
    return out


def _tensor(data: bytes | memoryview, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    """A tensor on ``data``: a view where it is writable and aligned, else a copy."""
    view = memoryview(data)
    aligned = view.readonly is False and np.frombuffer(view, np.uint8).ctypes.data % 8 == 0
    if not aligned:
        view = memoryview(bytearray(view))
    return torch.frombuffer(view, dtype=dtype).reshape(shape)


def encode_tensors(
    tensors: Sequence[torch.Tensor], codec: str = "none", quant: str = "none"
) -> tuple[list[dict[str, Any]], bytes | memoryview]:
    """Header entries and the payload for ``tensors``; ``quant`` applies to floating tensors."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: choose from {', '.join(CODECS)}")
    if quant not in QUANTS:
        raise ValueError(f"unknown quantisation {quant!r}: choose from {', '.join(QUANTS)}")
    metas, chunks = [], []
    for t in tensors:
        t = t.detach().contiguous().cpu()
        if t.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype {t.dtype} cannot travel: use one of {', '.join(DTYPES)}")
        meta: dict[str, Any] = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "codec": codec,
            "quant": "none",
        }
        wire = t
        if quant != "none" and t.is_floating_point():
            meta["quant"] = quant
            if quant == "fp16":
                wire = t.to(torch.float16)
            else:
                lo, hi = (float(t.min()), float(t.max())) if t.numel() else (0.0, 0.0)
                scale = (hi - lo) / 255.0 or 1.0
                meta["scale"], meta["zero"] = scale, lo
                wire = torch.clamp(torch.round((t - lo) / scale), 0, 255).to(torch.uint8)
        # a view of the tensor's own memory: nothing is copied until the socket takes it
        raw = wire.reshape(-1).view(torch.uint8).numpy().data if wire.numel() else b""
        meta["raw_bytes"] = len(raw)
        data = _compress(raw, codec)
        meta["bytes"] = len(data)
        metas.append(meta)
        chunks.append(data)
    return metas, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _wire_dtype(meta: Mapping[str, Any]) -> torch.dtype:
    quant = meta.get("quant", "none")
    if quant == "fp16":
        return torch.float16
    if quant == "int8":
        return torch.uint8
    return DTYPES[meta["dtype"]]


def decode_tensors(
    metas: Any, payload: bytes | bytearray | memoryview, limits: Limits = Limits()
) -> list[torch.Tensor]:
    """Tensors from header entries and a payload, every field and size checked first. From a
    writable payload (a bytearray: the server's receive buffer) uncompressed tensors are views
    of it, not copies."""
    buffer = memoryview(payload)
    if not isinstance(metas, list) or len(metas) > limits.max_tensors:
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"'tensors' must be a list of at most {limits.max_tensors} entries",
        )
    out, offset = [], 0
    for i, meta in enumerate(metas):
        try:
            dtype_name, shape, nbytes = meta["dtype"], meta["shape"], meta["bytes"]
            codec, quant = meta.get("codec", "none"), meta.get("quant", "none")
            raw_bytes = meta.get("raw_bytes", nbytes)
        except (TypeError, KeyError) as exc:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"tensor {i}: missing field {exc}") from None
        if dtype_name not in DTYPES:
            raise ProtocolError(
                ErrorCode.BAD_TENSOR,
                f"tensor {i}: dtype {dtype_name!r} not one of {', '.join(DTYPES)}",
            )
        if codec not in CODECS or quant not in QUANTS:
            raise ProtocolError(
                ErrorCode.BAD_TENSOR, f"tensor {i}: codec {codec!r}/quant {quant!r}"
            )
        if (
            not isinstance(shape, list)
            or len(shape) > limits.max_dims
            or not all(isinstance(s, int) and s >= 0 for s in shape)
        ):
            raise ProtocolError(ErrorCode.BAD_TENSOR, f"tensor {i}: bad shape {shape!r}")
        wire = _wire_dtype(meta)
        expected = math.prod(shape) * wire.itemsize
        if not isinstance(nbytes, int) or nbytes < 0 or offset + nbytes > len(payload):
            raise ProtocolError(
                ErrorCode.BAD_TENSOR, f"tensor {i}: {nbytes} bytes do not fit the payload"
            )
        if raw_bytes != expected or expected > limits.max_payload_bytes:
            raise ProtocolError(
                ErrorCode.BAD_TENSOR,
                f"tensor {i}: shape {shape} of {wire} needs {expected} bytes, "
                f"header says {raw_bytes}",
            )
        data = _decompress(buffer[offset : offset + nbytes], codec, expected)
        offset += nbytes
        t = _tensor(data, wire, shape) if expected else torch.empty(shape, dtype=wire)
        if quant == "fp16":
            t = t.to(DTYPES[dtype_name])
        elif quant == "int8":
            t = (t.to(torch.float32) * float(meta["scale"]) + float(meta["zero"])).to(
                DTYPES[dtype_name]
            )
        out.append(t)
    if offset != len(payload):
        raise ProtocolError(
            ErrorCode.BAD_TENSOR, f"payload has {len(payload) - offset} bytes no tensor claims"
        )
    return out
