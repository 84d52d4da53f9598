"""The edge speaks the Open Inference Protocol v2 (REST) to an unchanged third-party client
(tritonclient.http 2.73): health, metadata and binary inference, bit-exact with the back half
run here; and to hostile HTTP peers the same limits hold as on the native wire (the one gate,
budget and deadlines): refused before a byte of their tensors is read, the server serving the
others."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from tritonclient.utils import InferenceServerException

from coinfer.assembly import ModelSetup, load_model
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import BackgroundServer
from coinfer.edge.store import ModelStore
from coinfer.edge.v2 import V2Routes
from coinfer.graph.outputs import output_tensors
from coinfer.graph.partitioning import partition
from coinfer.wire.http import HttpParser
from coinfer.wire.parser import Admission, Head
from coinfer.wire.protocol import Kind, Limits, Message, ProtocolError
from coinfer.zoo.spec import ModelSpec

SPEC = ModelSpec("mlp", (("depth", 4), ("width", 64)))
TOKEN = "a-v2-token-of-some-length"
STORE = ModelStore([SPEC])  # the parser's tests translate against it


class Residual(nn.Module):
    """A cut after ``fc2`` sends two tensors: the inputs of a v2 request come in either order."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.fc1(x))
        b = self.fc2(a)
        return self.fc3(a + b)


@pytest.fixture(scope="module")
def mlp() -> ModelSetup:
    return load_model(SPEC)


@pytest.fixture(scope="module")
def edge(mlp: ModelSetup) -> Iterator[BackgroundServer]:
    x = torch.randn(1, 8)
    store = ModelStore.of(
        {
            "mlp": (mlp.torch_path(), mlp.inputs),
            "residual": (partition(Residual().eval(), (x,)), (x,)),
        }
    )
    with BackgroundServer(store, ServerOptions(token=TOKEN, http_port=0)) as server:
        yield server


def _client(edge: BackgroundServer) -> triton.InferenceServerClient:
    address = edge.server.http_address
    assert address is not None
    return triton.InferenceServerClient(url=f"{address[0]}:{address[1]}")


def auth() -> dict[str, str]:
    """The token's header, a new dict per call: tritonclient adds its own headers to the dict it
    is given (a reused dict then carries a stale Inference-Header-Content-Length)."""
    return {"Authorization": f"Bearer {TOKEN}"}


def test_tritonclient_sees_a_live_server_and_each_cut_as_a_model(
    edge: BackgroundServer, mlp: ModelSetup
) -> None:
    client = _client(edge)
    assert client.is_server_live() and client.is_server_ready()  # health needs no token
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("mlp.cut2", headers=auth())
    part = mlp.torch_path()
    assert meta["inputs"] == [
        {"name": f"boundary:{part.cuts[2].boundary[0]}", "datatype": "FP32", "shape": [1, 64]}
    ]
    assert meta["outputs"][0]["name"] == f"output:{part.output_names[0]}"
    assert meta["parameters"]["fingerprint"] == part.fingerprint.hex()
    assert client.is_model_ready("mlp.cut2", headers=auth())
    assert client.is_model_ready("mlp", model_version="1", headers=auth())  # cut 0


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infers_every_cut_bit_exact_with_the_back_half(
    edge: BackgroundServer, mlp: ModelSetup, binary: bool
) -> None:
    client = _client(edge)
    part = mlp.torch_path()
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(3))
    for cut in range(part.last):
        front, back = part.split(cut)
        with torch.no_grad():
            boundary = list(front(x))
            want = output_tensors(back(*boundary))
        name = f"mlp.cut{cut}" if cut else "mlp"
        meta = client.get_model_metadata(name, headers=auth())
        inputs = []
        for spec, tensor in zip(meta["inputs"], boundary, strict=True):
            given = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
            given.set_data_from_numpy(tensor.numpy(), binary_data=binary)
            inputs.append(given)
        outputs = [
            triton.InferRequestedOutput(o["name"], binary_data=binary) for o in meta["outputs"]
        ]
        result = client.infer(name, inputs, outputs=outputs, headers=auth())
        for spec, w in zip(meta["outputs"], want, strict=True):
            got = result.as_numpy(spec["name"])
            assert got is not None and np.array_equal(got, w.numpy()), (cut, binary)
        assert result.get_response()["parameters"]["edge_s"] >= 0


def test_inputs_in_any_order_reach_their_boundary_tensors(edge: BackgroundServer) -> None:
    client = _client(edge)
    store = edge.server.store
    part = store.path("residual")
    cut = next(c.index for c in part.cuts if len(c.boundary) == 2)
    x = torch.randn(1, 8)
    front, back = part.split(cut)
    with torch.no_grad():
        boundary = list(front(x))
        (want,) = output_tensors(back(*boundary))
    meta = client.get_model_metadata(f"residual.cut{cut}", headers=auth())
    inputs = []
    for spec, tensor in reversed(list(zip(meta["inputs"], boundary, strict=True))):
        given = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
        given.set_data_from_numpy(tensor.numpy())
        inputs.append(given)
    result = client.infer(f"residual.cut{cut}", inputs, headers=auth())
    got = result.as_numpy(meta["outputs"][0]["name"])
    assert got is not None and np.array_equal(got, want.numpy())


def test_the_token_a_model_and_a_fingerprint_are_checked_as_on_the_native_wire(
    edge: BackgroundServer, mlp: ModelSetup
) -> None:
    client = _client(edge)
    boundary = np.zeros((1, 64), np.float32)
    given = triton.InferInput("boundary:" + mlp.torch_path().cuts[2].boundary[0], [1, 64], "FP32")
    given.set_data_from_numpy(boundary)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "401"),
        ({"headers": {"Authorization": "Bearer wrong"}}, "401"),
        ({"headers": auth(), "model_name": "nope.cut2"}, "404"),
        ({"headers": auth(), "model_name": "mlp.cut9"}, "404"),
        ({"headers": auth(), "parameters": {"fingerprint": "00" * 16}}, "409"),
    ]
    for kwargs, status in cases:
        name = kwargs.pop("model_name", "mlp.cut2")
        with pytest.raises(InferenceServerException) as caught:
            client.infer(name, [given], **kwargs)
        assert caught.value.status() == status, (kwargs, caught.value)
    right = {"fingerprint": mlp.torch_path().fingerprint.hex()}
    assert client.infer("mlp.cut2", [given], headers=auth(), parameters=right) is not None


def _exchange(
    edge: BackgroundServer, data: bytes, timeout: float = 10.0, end: bool = True
) -> bytes:
    """``data`` written to the v2 port as it is (then the end of it, ``end``); everything
    the server says until it closes or goes quiet."""
    address = edge.server.http_address
    assert address is not None
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        if end:
            sock.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except TimeoutError:
            pass
    return got


def _request(
    path: str, body: bytes = b"", method: str = "POST", extra: dict[str, str] | None = None
) -> bytes:
    headers = {"Host": "edge", "Content-Length": str(len(body)), **auth(), **(extra or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


def _statuses(reply: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]


def test_pipelined_requests_are_each_answered_in_order(edge: BackgroundServer) -> None:
    ready = _request("/v2/health/ready", method="GET")
    meta = _request("/v2/models/mlp.cut1", method="GET")
    replies = _exchange(edge, ready + meta + ready, timeout=2.0, end=False)
    assert _statuses(replies) == [200, 200, 200]


def test_hostile_http_peers_are_refused_before_their_tensors_are_read(
    edge: BackgroundServer,
) -> None:
    x = STORE.path("mlp").cuts[0].boundary[0]
    huge = json.dumps(
        {
            "inputs": [
                {
                    "name": f"boundary:{x}",
                    "shape": [1 << 20, 1 << 20],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 1 << 40},
                }
            ]
        }
    ).encode()
    header_length = {"Inference-Header-Content-Length": str(len(huge))}
    cases = [
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n", 413),  # endless headers
        (b"NOT HTTP\r\n\r\n", 400),
        (_request("/v2/models/mlp/infer", b"{", extra={"Transfer-Encoding": "chunked"}), 400),
        (_request("/v2/models/mlp/infer", b"[1, 2"), 400),  # not JSON: the connection stays
        (_request("/v2/models/mlp/infer", huge, extra=header_length), 413),  # 4 TB of tensor
        (_request("/v2/models/mlp/infer", huge), 413),  # the same, as JSON only
        (_request("/v2/nowhere", method="GET"), 404),
        (_request("/v2/models/mlp/infer", method="GET"), 405),
    ]
    before = edge.server.budget.in_use
    for data, status in cases:
        assert _statuses(_exchange(edge, data))[:1] == [status], data[:60]
    assert edge.server.budget.in_use == before  # nothing held after any of them
    assert _statuses(_exchange(edge, _request("/v2/health/live", method="GET"))) == [200]


def test_a_request_beyond_the_budget_is_busy_and_the_server_serves_the_next(
    edge: BackgroundServer, mlp: ModelSetup
) -> None:
    cut = mlp.torch_path().cuts[0]
    doc = {
        "inputs": [
            {
                "name": f"boundary:{cut.boundary[0]}",
                "shape": [1, 64],
                "datatype": "FP32",
                "parameters": {"binary_data_size": 256},
            }
        ]
    }
    body = json.dumps(doc).encode()
    request = _request(
        "/v2/models/mlp/infer",
        body + bytes(256),
        extra={"Inference-Header-Content-Length": str(len(body))},
    )
    budget = edge.server.budget
    held = budget.limit - budget.in_use
    assert budget.reserve(held)  # another peer holds everything
    try:
        assert _statuses(_exchange(edge, request)) == [503]
    finally:
        budget.release(held)
    reply = _exchange(edge, request)
    assert _statuses(reply) == [200] and b'"output:' in reply


# -- the parser alone: however the bytes arrive, the same requests come out
def _feed(parser: HttpParser, data: bytes, cuts: list[int]) -> list[object]:
    events: list[object] = []
    at = 0
    for size in [*cuts, len(data)]:
        while at < len(data) and size > 0:
            view = parser.buffer()
            n = min(len(view), size, len(data) - at)
            view[:n] = data[at : at + n]
            at, size = at + n, size - n
            event = parser.feed(n)
            while event is not None:
                if isinstance(event, Head):  # everything is admitted here
                    event = parser.decide(Admission(bytearray(event.payload_len)))
                    continue
                events.append(event)
                event = parser.feed(0) if parser.pending else None
    return events


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 400), max_size=6))
def test_requests_split_anywhere_parse_the_same(cuts: list[int]) -> None:
    routes = V2Routes(STORE, Limits())
    name = STORE.path("mlp").cuts[0].boundary[0]
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": f"boundary:{name}",
                    "shape": [1, 64],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ]
        }
    ).encode()
    infer = _request(
        "/v2/models/mlp/infer",
        body + bytes(range(256)),
        extra={"Inference-Header-Content-Length": str(len(body))},
    )
    data = infer + _request("/v2/health/live", method="GET") + infer
    events = _feed(HttpParser(Limits(), routes.translate), data, cuts)
    assert [getattr(e, "kind", e) for e in events] == [Kind.INFER, Kind.PING, Kind.INFER]
    first, _, last = events
    assert isinstance(first, Message) and isinstance(last, Message)
    assert bytes(first.payload) == bytes(last.payload) == bytes(range(256))
    assert not any(isinstance(e, ProtocolError) for e in events)


def test_a_slow_http_peer_is_timed_out_as_a_native_one(mlp: ModelSetup) -> None:
    options = ServerOptions(token=TOKEN, http_port=0, read_timeout_s=0.5)
    with BackgroundServer(ModelStore.of({"mlp": (mlp.torch_path(), mlp.inputs)}), options) as edge:
        half = _request("/v2/health/live", method="GET")[:20]  # the rest never comes
        reply = _exchange(edge, half, timeout=10.0, end=False)
        assert _statuses(reply) == [408] and b"connection: close" in reply
        assert edge.server.stats.events["read_timeouts"] == 1
