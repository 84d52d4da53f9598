"""Tensors on the wire: what a header entry may say, and decoding that never allocates more
than the receiver expects.

A receiver knows what it should get — the edge the boundary of the (model, cut) asked for, the
device its model's outputs — so every entry is checked against that *before* any byte is
decoded: dtype, shape, codec, quantisation and sizes. Only then is memory taken, and never more
than the expected size: a compressed tensor is decompressed by a streaming decoder into a buffer
of exactly its expected size (a frame that declares another size, or has more to give, is
refused), and an int8 tensor is dequantised into a buffer of its expected size. A peer can make
the receiver hold at most what it would have sent honestly.

Tensors are numpy arrays here (``coinfer.arrays`` names their dtypes), so that a device without
PyTorch speaks the same wire; torch's side wraps them without a copy (``coinfer.dtypes``).
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from coinfer.arrays import FLOATING, NUMPY_DTYPES, dtype_name, itemsize
from coinfer.wire.protocol import ErrorCode, Limits, ProtocolError

CODECS = ("none", "lz4", "zstd")
QUANTS = ("none", "fp16", "int8")
MAX_DIM = 2**31 - 1
# a zstd frame may ask its decoder for a window this large at most (our encoder's level 3 uses
# 2 MiB); beyond it the frame is refused instead of the decoder allocating what it asks
ZSTD_MAX_WINDOW = 1 << 23


def compressed_bound(raw_bytes: int) -> int:
    """The most bytes an honest lz4 or zstd frame of ``raw_bytes`` takes (both libraries'
    worst cases are below raw + raw/255 + a few dozen bytes)."""
    return raw_bytes + raw_bytes // 128 + 1024


_QUANT_DTYPES = {"fp16": "float16", "int8": "uint8"}


class Expected(Protocol):
    """What a receiver takes for one tensor (a partition's ``TensorMeta``, a bundle's
    ``TensorSpec``)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype_name(self) -> str: ...


class WireTensor(NamedTuple):
    """One checked header entry: where its bytes lie in the payload and what they become."""

    dtype: str  # what the receiver gets
    wire_dtype: str  # what travels (the quantised type, or ``dtype``)
    shape: tuple[int, ...]
    codec: str
    quant: str
    scale: float
    zero: float
    offset: int
    nbytes: int  # in the payload
    numel: int

    @property
    def raw_bytes(self) -> int:
        return self.numel * itemsize(self.wire_dtype)

    @property
    def out_bytes(self) -> int:
        return self.numel * itemsize(self.dtype)

    @property
    def needs_work(self) -> bool:
        """Decoding takes more than a view of the payload (decompression, dequantisation)."""
        return self.codec != "none" or self.quant != "none"


def _bad(code: ErrorCode, text: str) -> ProtocolError:
    return ProtocolError(code, text)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(shape: Sequence[int], dtype: str) -> str:
    return f"{list(shape)} {dtype}"


def _entry(i: int, meta: Any, limits: Limits, offset: int) -> WireTensor:
    if not isinstance(meta, dict):
        raise _bad(ErrorCode.BAD_HEADER, f"tensor {i}: an entry must be a map")
    try:
        dtype_name, shape, nbytes = meta["dtype"], meta["shape"], meta["bytes"]
    except KeyError as exc:
        raise _bad(ErrorCode.BAD_HEADER, f"tensor {i}: missing field {exc}") from None
    codec, quant = meta.get("codec", "none"), meta.get("quant", "none")
    if not isinstance(dtype_name, str) or dtype_name not in NUMPY_DTYPES:
        raise _bad(
            ErrorCode.BAD_TENSOR,
            f"tensor {i}: dtype {dtype_name!r} not one of {', '.join(NUMPY_DTYPES)}",
        )
    if not isinstance(codec, str) or codec not in CODECS:
        raise _bad(ErrorCode.BAD_TENSOR, f"tensor {i}: codec {codec!r} not one of {CODECS}")
    if not isinstance(quant, str) or quant not in QUANTS:
        raise _bad(ErrorCode.BAD_TENSOR, f"tensor {i}: quant {quant!r} not one of {QUANTS}")
    if (
        not isinstance(shape, list)
        or len(shape) > limits.max_dims
        or not all(_is_int(s) and 0 <= s <= MAX_DIM for s in shape)
    ):
        raise _bad(ErrorCode.BAD_TENSOR, f"tensor {i}: bad shape {shape!r}")
    dtype = dtype_name
    if quant != "none" and dtype not in FLOATING:
        raise _bad(ErrorCode.BAD_TENSOR, f"tensor {i}: {quant} applies to floating tensors only")
    scale = zero = 0.0
    if quant == "int8":
        given: Any = (meta.get("scale"), meta.get("zero"))
        if not (all(_is_real(v) and math.isfinite(v) for v in given) and given[0] > 0):
            raise _bad(
                ErrorCode.BAD_TENSOR,
                f"tensor {i}: int8 needs a finite scale > 0 and zero, got "
                f"{given[0]!r}, {given[1]!r}",
            )
        scale, zero = float(given[0]), float(given[1])
    wire_dtype = _QUANT_DTYPES.get(quant, dtype)
    numel = math.prod(shape)
    raw = numel * itemsize(wire_dtype)
    if max(raw, numel * itemsize(dtype)) > limits.max_payload_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"tensor {i}: shape {list(shape)} of {dtype} takes "
            f"{numel * itemsize(dtype)} bytes > limit "
            f"{limits.max_payload_bytes}",
        )
    declared_raw = meta.get("raw_bytes", raw)
    if not _is_int(declared_raw) or declared_raw != raw:
        raise _bad(
            ErrorCode.BAD_TENSOR,
            f"tensor {i}: shape {list(shape)} of {wire_dtype} needs {raw} bytes, "
            f"header says {declared_raw!r}",
        )
    if not _is_int(nbytes) or nbytes < 0:
        raise _bad(ErrorCode.BAD_TENSOR, f"tensor {i}: bytes {nbytes!r} is not a size")
    if codec == "none" and nbytes != raw:
        raise _bad(
            ErrorCode.BAD_TENSOR, f"tensor {i}: {nbytes} bytes sent for {raw} uncompressed bytes"
        )
    if codec != "none" and nbytes > compressed_bound(raw):
        raise _bad(
            ErrorCode.BAD_TENSOR,
            f"tensor {i}: {nbytes} {codec} bytes for {raw} raw bytes is more than "
            f"{codec} ever takes",
        )
    return WireTensor(
        dtype, wire_dtype, tuple(shape), codec, quant, scale, zero, offset, nbytes, numel
    )


Key = tuple[tuple[tuple[int, ...], str], ...]  # each expected tensor's shape and dtype


@functools.lru_cache(maxsize=1024)
def _plain(expected: Key) -> tuple[list[dict[str, Any]], list[WireTensor], int] | None:
    """The entries an honest peer sends for ``expected`` uncompressed and unquantised (what
    ``encode_tensors`` writes), their checked form and their total size: most messages are
    exactly these. None where a dtype cannot travel."""
    if not all(name in NUMPY_DTYPES for _, name in expected):
        return None
    entries, wires, offset = [], [], 0
    for shape, name in expected:
        numel = math.prod(shape)
        nbytes = numel * itemsize(name)
        entries.append(
            {
                "dtype": name,
                "shape": list(shape),
                "codec": "none",
                "quant": "none",
                "raw_bytes": nbytes,
                "bytes": nbytes,
            }
        )
        wires.append(WireTensor(name, name, shape, "none", "none", 0.0, 0.0, offset, nbytes, numel))
        offset += nbytes
    return entries, wires, offset


def check_tensors(
    metas: Any,
    limits: Limits,
    expected: Sequence[Expected] | None = None,
    what: str = "the receiver",
) -> list[WireTensor]:
    """The header's tensor entries, every field checked, and (when ``expected`` is given)
    each equal in dtype and shape to what the receiver (``what``) takes; nothing is
    allocated."""
    want = None if expected is None else tuple((tuple(m.shape), m.dtype_name) for m in expected)
    plain = _plain(want) if want is not None else None
    if plain is not None and metas == plain[0] and plain[2] <= limits.max_payload_bytes:
        return list(plain[1])  # exactly what an honest peer sends: checked once, kept
    if not isinstance(metas, list) or len(metas) > limits.max_tensors:
        raise _bad(
            ErrorCode.BAD_HEADER,
            f"'tensors' must be a list of at most {limits.max_tensors} entries",
        )
    wires, offset, total = [], 0, 0
    for i, meta in enumerate(metas):
        wire = _entry(i, meta, limits, offset)
        offset += wire.nbytes
        total += wire.out_bytes
        if total > limits.max_payload_bytes:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"the tensors decode to more than {limits.max_payload_bytes} bytes",
            )
        wires.append(wire)
    if want is not None:
        got = tuple((w.shape, w.dtype) for w in wires)
        if got != want:
            have = ", ".join(_describe(s, d) for s, d in got) or "none"
            raise _bad(
                ErrorCode.BAD_TENSOR,
                f"{what} takes {', '.join(_describe(s, d) for s, d in want) or 'none'}; got {have}",
            )
    return wires


def payload_bytes(wires: Sequence[WireTensor]) -> int:
    return sum(w.nbytes for w in wires)


def decode_bytes(wires: Sequence[WireTensor]) -> int:
    """Memory decoding takes beyond the payload itself (decompressed and dequantised copies,
    the zstd window): what a receiver reserves before it reads the payload."""
    total = 0
    for w in wires:
        if w.codec != "none":
            total += w.raw_bytes + (min(ZSTD_MAX_WINDOW, w.raw_bytes) if w.codec == "zstd" else 0)
        if w.quant != "none":
            total += w.numel * 4 + w.out_bytes  # the float32 working copy and the result
    return total


def _decompress(data: memoryview, wire: WireTensor) -> bytearray:
    """``data`` decompressed into exactly ``wire.raw_bytes``, never more."""
    expected = wire.raw_bytes
    try:
        if wire.codec == "lz4":
            import lz4.frame

            decoder = lz4.frame.LZ4FrameDecompressor(return_bytearray=True)
            out = decoder.decompress(data, max_length=expected + 1)
            if len(out) > expected:
                raise ValueError(f"the frame gives more than {expected} bytes")
            if len(out) < expected or not decoder.eof:
                raise ValueError(f"the frame ends after {len(out)} of {expected} bytes")
            return out
        import zstandard

        declared = zstandard.frame_content_size(data)
        if declared not in (-1, expected):
            raise ValueError(f"the frame declares {declared} bytes, expected {expected}")
        out = bytearray(expected)
        view, filled = memoryview(out), 0
        reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(data)
        with reader:
            while filled < expected:
                n = reader.readinto(view[filled:])
                if not n:
                    raise ValueError(f"the frame gives {filled} bytes, expected {expected}")
                filled += n
            if reader.read(1):
                raise ValueError(f"the frame gives more than {expected} bytes")
        return out
    except ProtocolError:
        raise
    except Exception as exc:  # the libraries raise their own types for corrupt data
        raise _bad(ErrorCode.BAD_TENSOR, f"cannot decompress ({wire.codec}): {exc}") from None


def _view(data: bytes | bytearray | memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """An array on ``data``: a view where it is writable and aligned, else a copy."""
    if not math.prod(shape):
        return np.empty(shape, dtype=NUMPY_DTYPES[dtype])
    view = memoryview(data)
    aligned = not view.readonly and ctypes.addressof(ctypes.c_char.from_buffer(view)) % 8 == 0
    if not aligned:
        view = memoryview(bytearray(view))
    return np.frombuffer(view, dtype=NUMPY_DTYPES[dtype]).reshape(shape)


def decode(
    wires: Sequence[WireTensor], payload: bytes | bytearray | memoryview
) -> list[np.ndarray]:
    """The arrays of checked entries. Uncompressed, unquantised tensors of a writable payload
    (the server's receive buffer) are views of it, not copies."""
    buffer = memoryview(payload)
    if payload_bytes(wires) != len(buffer):
        raise _bad(
            ErrorCode.BAD_TENSOR,
            f"the payload has {len(buffer)} bytes, the tensors claim {payload_bytes(wires)}",
        )
    out = []
    for w in wires:
        data: bytes | bytearray | memoryview = buffer[w.offset : w.offset + w.nbytes]
        if w.codec != "none":
            data = _decompress(buffer[w.offset : w.offset + w.nbytes], w)
        t = _view(data, w.wire_dtype, w.shape)
        if w.quant == "fp16":
            t = t.astype(NUMPY_DTYPES[w.dtype])
        elif w.quant == "int8":
            work = t.astype(np.float32)
            work *= np.float32(w.scale)
            work += np.float32(w.zero)
            t = work if w.dtype == "float32" else work.astype(NUMPY_DTYPES[w.dtype])
        out.append(t)
    return out


def decode_tensors(
    metas: Any,
    payload: bytes | bytearray | memoryview,
    limits: Limits | None = None,
    expected: Sequence[Expected] | None = None,
    what: str = "the receiver",
) -> list[np.ndarray]:
    """Check the entries (against ``expected`` when given), then decode them."""
    return decode(check_tensors(metas, limits or Limits(), expected, what), payload)


def raw_bytes(array: np.ndarray) -> memoryview:
    """A contiguous array's bytes as a view of its own memory: nothing is copied until the
    socket takes it."""
    return array.reshape(-1).view(np.uint8).data if array.size else memoryview(b"")


def encode_tensors(
    arrays: Sequence[np.ndarray], codec: str = "none", quant: str = "none"
) -> tuple[list[dict[str, Any]], bytes | memoryview]:
    """Header entries and the payload for ``arrays``; ``quant`` applies to floating ones."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: choose from {', '.join(CODECS)}")
    if quant not in QUANTS:
        raise ValueError(f"unknown quantisation {quant!r}: choose from {', '.join(QUANTS)}")
    metas, chunks = [], []
    for given in arrays:
        a = np.asarray(given, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        name = dtype_name(a.dtype)
        if name is None:
            raise ValueError(f"dtype {a.dtype} cannot travel: use one of {', '.join(NUMPY_DTYPES)}")
        meta: dict[str, Any] = {
            "dtype": name,
            "shape": list(a.shape),
            "codec": codec,
            "quant": "none",
        }
        wire = a
        if quant != "none" and name in FLOATING:
            meta["quant"] = quant
            if quant == "fp16":
                wire = a.astype(np.float16)
            else:
                lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    raise ValueError("int8 quantisation needs finite values")
                scale = (hi - lo) / 255.0 or 1.0
                meta["scale"], meta["zero"] = scale, lo
                wire = np.clip(np.round((a - lo) / scale), 0, 255).astype(np.uint8)
        raw = raw_bytes(wire)
        meta["raw_bytes"] = len(raw)
        data = _compress(raw, codec)
        meta["bytes"] = len(data)
        metas.append(meta)
        chunks.append(data)
    return metas, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _compress(data: bytes | memoryview, codec: str) -> bytes | memoryview:
    if codec == "lz4":
        import lz4.frame

        return bytes(lz4.frame.compress(data))
    if codec == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return data
