"""The wire protocol: tensors round-trip exactly (or within the quantisation step), and every
malformed message is refused with the code that names the problem, before any big allocation."""

from __future__ import annotations

import asyncio
import struct

import msgpack
import pytest
import torch

from coinfer.device.streams import read_message
from coinfer.dtypes import DTYPES, from_numpy, to_arrays, to_numpy
from coinfer.wire.protocol import (
    PREFIX,
    ErrorCode,
    Kind,
    Limits,
    ProtocolError,
    pack,
    unpack_header,
    unpack_prefix,
)
from coinfer.wire.tensors import decode_tensors, encode_tensors


def _round_trip(tensors: list[torch.Tensor], codec: str = "none", quant: str = "none"):
    """Through the wire as the edge and the torch device use it: numpy arrays on its memory."""
    metas, payload = encode_tensors([to_numpy(t) for t in tensors], codec, quant)
    wire = pack(Kind.INFER, {"id": 7, "tensors": metas}, payload)
    kind, header_len, payload_len = unpack_prefix(wire[: PREFIX.size], Limits())
    header = unpack_header(wire[PREFIX.size : PREFIX.size + header_len])
    assert kind is Kind.INFER and header["id"] == 7 and payload_len == len(payload)
    arrays = decode_tensors(header["tensors"], bytearray(wire[PREFIX.size + header_len :]))
    return [from_numpy(a) for a in arrays], len(wire)


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_every_dtype_round_trips_bit_exact(codec: str) -> None:
    gen = torch.Generator().manual_seed(0)
    tensors = []
    for dtype in DTYPES.values():
        base = torch.randn(2, 3, 5, generator=gen) * 50
        tensors.append(base > 0 if dtype is torch.bool else base.to(dtype))
    tensors += [torch.zeros(0, 4), torch.tensor(3.5), torch.randn(4, 6)[:, ::2]]  # empty, 0-d, view
    got, _ = _round_trip(tensors, codec)
    for g, w in zip(got, tensors, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape and torch.equal(g, w.contiguous())


def test_quantisation_shrinks_and_stays_within_its_step() -> None:
    x = torch.randn(1, 64, 28, 28, generator=torch.Generator().manual_seed(1))
    (exact,), plain = _round_trip([x])
    (half,), halved = _round_trip([x], quant="fp16")
    (q8,), quarter = _round_trip([x], quant="int8")
    assert torch.equal(exact, x) and half.dtype == q8.dtype == torch.float32
    assert torch.allclose(half, x, rtol=1e-3, atol=1e-3)
    step = float(x.max() - x.min()) / 255
    assert float((q8 - x).abs().max()) <= step / 2 + 1e-6
    assert halved < 0.51 * plain and quarter < 0.26 * plain
    (ints,), _ = _round_trip([torch.arange(10)], quant="int8")  # integers are never quantised
    assert torch.equal(ints, torch.arange(10))
    sparse = torch.relu(torch.randn(1, 64, 28, 28, generator=torch.Generator().manual_seed(2)))
    _, packed = _round_trip([sparse], codec="zstd")
    assert packed < 0.8 * plain  # half zeros compress


def _frame(kind: int, header: bytes, payload: bytes = b"", magic: bytes = b"CF", version: int = 1):
    return PREFIX.pack(magic, version, kind, len(header), len(payload)) + header + payload


def test_framing_errors_are_fatal_and_named() -> None:
    limits = Limits(max_header_bytes=100, max_payload_bytes=1000)
    cases = [
        (_frame(1, b"", magic=b"GE"), ErrorCode.BAD_FRAME, "bad magic"),
        (_frame(1, b"", version=9), ErrorCode.BAD_FRAME, "version 9"),
        (PREFIX.pack(b"CF", 1, 1, 101, 0), ErrorCode.TOO_LARGE, "header of 101 bytes"),
        (PREFIX.pack(b"CF", 1, 1, 0, 1001), ErrorCode.TOO_LARGE, "payload of 1001 bytes"),
    ]
    for wire, code, text in cases:
        with pytest.raises(ProtocolError, match=text) as info:
            unpack_prefix(wire[: PREFIX.size], limits)
        assert info.value.code is code and info.value.fatal
    with pytest.raises(ProtocolError) as info:
        unpack_prefix(PREFIX.pack(b"CF", 1, 99, 0, 0), limits)
    assert info.value.code is ErrorCode.UNSUPPORTED and info.value.fatal  # then closed


def test_bad_headers_and_tensors_are_refused() -> None:
    with pytest.raises(ProtocolError, match="not msgpack") as info:
        unpack_header(b"\xc1\xc1")
    assert info.value.code is ErrorCode.BAD_HEADER
    with pytest.raises(ProtocolError, match="must be a msgpack map"):
        unpack_header(msgpack.packb([1, 2]))
    metas, payload = encode_tensors(to_arrays([torch.ones(2, 3)]))
    bad = [
        ([{**metas[0], "dtype": "object"}], payload, "dtype 'object'"),
        ([{**metas[0], "shape": [2, 4]}], payload, "needs 32 bytes"),
        ([{**metas[0], "shape": [-1, 3]}], payload, "bad shape"),
        ([{**metas[0], "bytes": 25}], payload, "25 bytes sent for 24"),
        (metas, bytes(payload) + b"xx", "the tensors claim 24"),
        ([{**metas[0], "codec": "lz4"}], payload, "cannot decompress"),
        ([{"shape": [2, 3]}], payload, "missing field"),
        ({"not": "a list"}, payload, "must be a list"),
    ]
    for header_metas, data, text in bad:
        with pytest.raises(ProtocolError, match=text):
            decode_tensors(header_metas, data)
    huge = [{"dtype": "float32", "shape": [10**9], "bytes": 0, "raw_bytes": 4 * 10**9}]
    with pytest.raises(ProtocolError, match="takes 4000000000 bytes > limit"):
        decode_tensors(huge, b"", Limits(max_payload_bytes=10**6))  # refused before allocating
    with pytest.raises(ValueError, match="cannot travel"):
        encode_tensors(to_arrays([torch.zeros(2, dtype=torch.complex64)]))


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_reading_messages_from_a_stream() -> None:
    async def scenario() -> None:
        one = pack(Kind.PING, {"id": 1})
        two = pack(Kind.INFER, {"id": 2}, b"abc")
        reader = _reader(one + two)
        first = await read_message(reader, Limits())
        second = await read_message(reader, Limits())
        assert first is not None and first.kind is Kind.PING and first.header == {"id": 1}
        assert second is not None and second.payload == b"abc"
        assert await read_message(reader, Limits()) is None  # a clean end
        with pytest.raises(ProtocolError, match="closed mid-message"):
            await read_message(_reader(two[:-1]), Limits())
        with pytest.raises(ProtocolError, match="closed mid-message"):
            await read_message(_reader(two[:5]), Limits())
        stalled = asyncio.StreamReader()
        stalled.feed_data(two[:14])  # and nothing more: a peer that stops sending
        with pytest.raises(ProtocolError, match=r"no whole message within 0\.2 s") as info:
            await read_message(stalled, Limits(), timeout_s=0.2)
        assert info.value.code is ErrorCode.TIMEOUT

    asyncio.run(scenario())


def test_prefix_layout_is_what_the_docs_say() -> None:
    wire = pack(Kind.RESULT, {"id": 3}, b"\x00" * 5)
    assert wire[:2] == b"CF" and wire[2] == 1 and wire[3] == int(Kind.RESULT)
    header_len, payload_len = struct.unpack(">II", wire[4:12])
    assert payload_len == 5 and len(wire) == 12 + header_len + 5
