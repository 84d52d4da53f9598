"""A v2 server that lies: the device trusts its replies no more than a native edge's. Every
lie below — wrong shapes or names, a body longer than the outputs can be, inconsistent binary
sizes, an impossible edge time, an error status, not HTTP at all — is a named error and the
frame is finished on the device, with the model's own answer."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from coinfer.assembly import ModelSetup, load_model
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.graph.outputs import output_tensors
from coinfer.policies.types import Action
from coinfer.zoo.spec import ModelSpec

SPEC = ModelSpec("mlp", (("depth", 3), ("width", 16)))


@pytest.fixture(scope="module")
def setup() -> ModelSetup:
    return load_model(SPEC)


def _reply(doc: dict, binary: bytes = b"", status: int = 200, length: int | None = None) -> bytes:
    text = json.dumps(doc).encode()
    body = text + binary
    head = [f"HTTP/1.1 {status} X", f"content-length: {length or len(body)}"]
    if binary:
        head.append(f"inference-header-content-length: {len(text)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _output(name: str, shape: list[int], nbytes: int) -> dict:
    return {
        "name": name,
        "datatype": "FP32",
        "shape": shape,
        "parameters": {"binary_data_size": nbytes},
    }


def _lies(name: str) -> list[tuple[str, bytes, str]]:
    good = np.zeros((1, 16), np.float32).tobytes()
    return [
        ("shape", _reply({"outputs": [_output(name, [1, 8], 32)]}, good[:32]), "BAD_TENSOR"),
        ("name", _reply({"outputs": [_output("output:x", [1, 16], 64)]}, good), "not the model"),
        ("sizes", _reply({"outputs": [_output(name, [1, 16], 64)]}, good + b"xx"), "binary"),
        ("long", _reply({"outputs": []}, length=10**12), "TOO_LARGE"),
        ("status", _reply({"error": "boom"}, status=500), "HTTP 500: boom"),
        ("not http", b"SSH-2.0-OpenSSH\r\n\r\n", "BAD_FRAME"),
        (
            "edge time",
            _reply({"outputs": [_output(name, [1, 16], 64)], "parameters": {"edge_s": 1e6}}, good),
            "impossible edge_s",
        ),
    ]


async def _serve_once(reply: bytes) -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(v for k, v in _headers(head) if k == "content-length"))
        await reader.readexactly(length)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


def _headers(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode().split("\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]


@pytest.mark.parametrize("case", range(7))
def test_a_lying_v2_server_costs_a_fallback_never_a_wrong_answer(
    setup: ModelSetup, case: int
) -> None:
    part = setup.torch_path()
    name = "output:" + part.output_names[0]
    what, reply, named = _lies(name)[case]
    x = torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        (want,) = output_tensors(setup.torch_net(x))

    async def frame() -> tuple:
        server, port = await _serve_once(reply)
        client = DeviceClient(
            setup.name,
            part,
            [0.0] * part.num_cuts,
            Endpoint(("127.0.0.1", port), protocol="v2"),
            options=ClientOptions(emulate=False, edge_timeout_s=10.0),
        )
        try:
            record = await client.frame(0, [x], Action(1))
            return record, client.outputs[-1]
        finally:
            await client.close()
            server.close()

    record, outputs = asyncio.run(frame())
    assert record.fallback and not record.offloaded, what
    assert named in (record.error or ""), (what, record.error)
    assert torch.equal(outputs[0], want), what
