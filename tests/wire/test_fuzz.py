"""Hypothesis against the decoders a peer reaches: the server's framing and admission, the
tensor checks and the device's reply checks. Whatever the bytes, each answers with a message or
a ProtocolError — never another exception — and never holds more than its memory budget."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinfer.assembly import ModelSetup, load_model
from coinfer.device.client import check_result
from coinfer.dtypes import from_numpy, to_arrays
from coinfer.edge.options import ServerOptions
from coinfer.edge.server import EdgeServer
from coinfer.edge.store import ModelStore
from coinfer.errors import BadValueError
from coinfer.wire.parser import SCRATCH_BYTES, Head, Parser
from coinfer.wire.protocol import PREFIX, Kind, Limits, Message, ProtocolError, pack
from coinfer.wire.tensors import decode, decode_tensors, encode_tensors

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUDGET = 4 * 1024 * 1024
LIMITS = Limits(max_header_bytes=4096, max_payload_bytes=2 * 1024 * 1024)


@pytest.fixture(scope="module")
def alexnet() -> ModelSetup:
    return load_model("alexnet")


@pytest.fixture(scope="module")
def server(alexnet: ModelSetup) -> EdgeServer:
    """An edge server's admission (not started: only its decisions are fuzzed)."""
    store = ModelStore.of({"alexnet": (alexnet.torch_path(), alexnet.inputs)})
    return EdgeServer(store, ServerOptions(token="t" * 16, max_buffer_bytes=BUDGET, limits=LIMITS))


def _parser(server: EdgeServer) -> Parser:
    """A connection's parser on the server's budget (as ``EdgeServer`` makes them)."""
    return Parser(LIMITS, server.budget, bytearray(SCRATCH_BYTES))


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
entry_fields = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(["float32", "float16", "int8", "bool", "x"]) | msgpack_values,
        "shape": st.lists(st.integers(-2, 2**40), max_size=5) | msgpack_values,
        "codec": st.sampled_from(["none", "lz4", "zstd", "gzip"]) | msgpack_values,
        "quant": st.sampled_from(["none", "fp16", "int8"]) | msgpack_values,
        "raw_bytes": st.integers(-1, 2**40) | msgpack_values,
        "bytes": st.integers(-1, 2**22) | msgpack_values,
        "scale": st.floats() | msgpack_values,
        "zero": st.floats() | msgpack_values,
    },
)


def _feed(parser: Parser, data: bytes, chunks: list[int], server: EdgeServer) -> list[Any]:
    """``data`` into the parser as a socket would deliver it, in chunks of the given sizes,
    each header decided by the server's gate (as ``edge.connection`` does)."""
    items, pos, sizes = [], 0, iter(chunks)
    while pos < len(data):
        buffer = parser.buffer()
        assert len(buffer) > 0  # a BufferedProtocol must never get an empty buffer
        n = min(len(buffer), len(data) - pos, next(sizes, 4096) or 1)
        buffer[:n] = data[pos : pos + n]
        pos += n
        item = parser.feed(n)
        if isinstance(item, Head):
            item = parser.decide(server.gate.admit(item))
        assert server.budget.in_use <= server.budget.limit
        if item is not None:
            items.append(item)
        if parser.stopped:
            break
    return items


@FUZZ
@given(data=st.binary(max_size=3000), chunks=st.lists(st.integers(1, 600), max_size=20))
def test_framing_survives_any_bytes(server: EdgeServer, data: bytes, chunks: list[int]) -> None:
    for stream in (data, PREFIX.pack(b"CF", 1, 1, len(data), 0) + data):
        budget = server.budget  # the one admission reserves from
        parser = _parser(server)
        items = _feed(parser, stream, chunks, server)
        assert all(isinstance(i, (Message, ProtocolError)) for i in items)
        for item in items:
            if isinstance(item, Message):
                budget.release(item.reserved)
        parser.release()
        assert budget.in_use == 0  # nothing held once every request is answered


@FUZZ
@given(
    kind=st.sampled_from(list(Kind)) | st.integers(0, 255),
    header=st.fixed_dictionaries(
        {"id": st.integers(0, 10) | msgpack_values},
        optional={
            "model": st.sampled_from(["alexnet", "vgg16"]) | msgpack_values,
            "cut": st.integers(-1, 30) | msgpack_values,
            "exit": st.none() | msgpack_values,
            "fp": st.binary(min_size=16, max_size=16) | msgpack_values,
            "token": st.sampled_from(["t" * 16, "T" * 16, ""]) | msgpack_values,
            "tensors": st.lists(entry_fields, max_size=3) | msgpack_values,
            "slowdown": st.floats() | msgpack_values,
        },
    ),
    payload=st.binary(max_size=4096),
    chunks=st.lists(st.integers(1, 900), max_size=10),
)
def test_admission_refuses_or_takes_any_header(
    server: EdgeServer, kind: int, header: dict, payload: bytes, chunks: list[int]
) -> None:
    body = msgpack.packb(header, use_bin_type=True)
    stream = PREFIX.pack(b"CF", 1, int(kind), len(body), len(payload)) + body + payload
    parser = _parser(server)
    for item in _feed(parser, stream, chunks, server):
        if isinstance(item, Message):
            if item.kind is Kind.INFER:  # admitted: the tensors decode, or are refused by name
                try:
                    tensors = [from_numpy(a) for a in decode(item.job.wires, item.payload)]
                except ProtocolError:
                    pass
                else:
                    want = server.store.boundary("alexnet", item.job.request.cut)
                    assert [(tuple(t.shape), t.dtype) for t in tensors] == [
                        (m.shape, m.dtype) for m in want
                    ]
            assert item.reserved <= BUDGET
            server.budget.release(item.reserved)
        else:
            assert isinstance(item, ProtocolError)
    parser.release()
    assert server.budget.in_use == 0


@FUZZ
@given(metas=st.lists(entry_fields, max_size=4) | msgpack_values, payload=st.binary(max_size=2048))
def test_tensor_checks_name_every_problem(metas: Any, payload: bytes) -> None:
    try:
        tensors = [from_numpy(a) for a in decode_tensors(metas, bytearray(payload), LIMITS)]
    except ProtocolError:
        return
    assert sum(t.numel() * t.element_size() for t in tensors) <= LIMITS.max_payload_bytes


@FUZZ
@given(
    kind=st.sampled_from(list(Kind)),
    header=st.fixed_dictionaries(
        {},
        optional={
            "id": st.just(7) | msgpack_values,
            "edge_s": st.floats() | msgpack_values,
            "tensors": st.lists(entry_fields, max_size=2) | msgpack_values,
            "code": st.integers(0, 20) | msgpack_values,
            "message": msgpack_values,
        },
    ),
    payload=st.binary(max_size=5000),
    honest=st.booleans(),
)
def test_the_device_accepts_only_the_right_result(
    alexnet: ModelSetup, kind: Kind, header: dict, payload: bytes, honest: bool
) -> None:
    expected = alexnet.part.outputs
    if honest:  # the right outputs, with whatever else the header says
        metas, data = encode_tensors(to_arrays([torch.zeros(1, 1000)]))
        header, payload = {**header, "tensors": metas}, bytes(data)
    try:
        outputs, edge_s = check_result(Message(kind, header, payload), 7, expected, LIMITS, 1.0)
    except ProtocolError:
        return
    assert kind is Kind.RESULT and header["id"] == 7 and 0 <= edge_s <= 1.02
    got = [(tuple(a.shape), str(a.dtype)) for a in outputs]
    assert got == [(m.shape, m.dtype_name) for m in expected]


@FUZZ
@given(
    cut=st.integers(0, 22),
    codec=st.sampled_from(["none", "lz4", "zstd"]),
    quant=st.sampled_from(["none", "fp16", "int8"]),
    field=st.sampled_from(
        [None, "dtype", "shape", "codec", "quant", "raw_bytes", "bytes", "scale", "zero"]
    ),
    value=msgpack_values,
    trim=st.integers(-3, 3),
    chunks=st.lists(st.integers(1, 70_000), max_size=10),
)
def test_an_honest_request_is_taken_and_a_mutated_one_refused_or_decoded(
    server: EdgeServer,
    alexnet: ModelSetup,
    cut: int,
    codec: str,
    quant: str,
    field: str | None,
    value: Any,
    trim: int,
    chunks: list[int],
) -> None:
    sent = [
        torch.rand(m.shape, generator=torch.Generator().manual_seed(cut)).to(m.dtype)
        for m in alexnet.torch_path().boundary_metas(cut)
    ]
    metas, payload = encode_tensors(to_arrays(sent), codec, quant)
    data = bytes(payload)
    if field is not None:
        metas[0][field] = value
    data = data[: len(data) + trim] if trim < 0 else data + b"x" * trim
    header = {
        "id": 5,
        "model": "alexnet",
        "cut": cut,
        "fp": alexnet.part.fingerprint,
        "tensors": metas,
        "token": "t" * 16,
    }
    parser = _parser(server)
    (item,) = _feed(parser, pack(Kind.INFER, header, data), chunks, server)
    parser.release()
    if isinstance(item, Message):
        server.budget.release(item.reserved)
    assert server.budget.in_use == 0
    honest = field is None and trim == 0
    if isinstance(item, ProtocolError):
        assert not honest, item
        return
    assert isinstance(item, Message) and item.reserved <= BUDGET
    try:
        got = [from_numpy(a) for a in decode(item.job.wires, item.payload)]
    except ProtocolError:
        assert not honest
        return
    assert [(tuple(t.shape), t.dtype) for t in got] == [(tuple(t.shape), t.dtype) for t in sent]
    if honest:
        for g, w in zip(got, sent, strict=True):
            assert torch.allclose(g.float(), w.float(), atol=1 / 255 if quant == "int8" else 1e-3)


def test_a_short_token_is_refused_unless_insecure_and_then_warned_of(alexnet: ModelSetup) -> None:
    with pytest.raises(BadValueError, match="2 bytes: an edge's needs at least 16"):
        ServerOptions(token="k9")
    store = ModelStore.of({"alexnet": (alexnet.torch_path(), alexnet.inputs)})
    weak = EdgeServer(store, ServerOptions(token="k9", insecure=True))
    assert any("can be guessed" in notice for notice in weak.notices), weak.notices
    assert not EdgeServer(store, ServerOptions(token="é" * 8)).notices  # 16 bytes of UTF-8
