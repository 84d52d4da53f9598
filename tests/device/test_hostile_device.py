"""The device against a hostile edge (issue findings 5-8): whatever the edge sends, or fails to
send, every frame is answered — with the model's exact output, computed on the device when the
reply is wrong — within its deadline, in bounded memory, and no policy learns from an
impossible measurement."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import zstandard
from torch import nn

from coinfer import partition
from coinfer.assembly import ModelSetup, load_model
from coinfer.device.client import DeviceClient
from coinfer.device.records import FrameRecord, write_log
from coinfer.dtypes import to_arrays
from coinfer.edge.budget import process_memory, reset_peak_memory
from coinfer.latency.devices import resolve_device
from coinfer.latency.predict import CutCostModel
from coinfer.policies.bandits import TunedMuLinUCB
from coinfer.policies.static import FixedCut
from coinfer.policies.types import Feedback, plausible
from coinfer.wire.protocol import Kind, pack
from coinfer.wire.tensors import encode_tensors
from tests.edges import Edges
from tests.peers import MIB, EvilEdge, device_client, run_live

CUT = 15


@pytest.fixture(scope="module")
def alexnet() -> ModelSetup:
    return load_model("alexnet")


@pytest.fixture(scope="module")
def want(alexnet: ModelSetup) -> torch.Tensor:
    with torch.no_grad():
        return alexnet.torch_path().graph_module(*alexnet.inputs)


def result(header: dict[str, Any], outputs: list[torch.Tensor], **fields: Any) -> bytes:
    """An honest RESULT, with ``fields`` overriding its header."""
    metas, payload = encode_tensors(to_arrays(outputs))
    reply = {"id": header["id"], "edge_s": 0.0001, "tensors": metas, **fields}
    return pack(Kind.RESULT, reply, payload)


def _run(client: DeviceClient, policy: Any, frames: list[Any]) -> list[FrameRecord]:
    """The run in a thread, so that a device that hangs fails the test instead of hanging it."""
    box: list[Any] = []
    thread = threading.Thread(
        target=lambda: box.append(asyncio.run(run_live(client, policy, frames))), daemon=True
    )
    thread.start()
    thread.join(timeout=120)
    assert box, "the device hung"
    return box[0]


@pytest.fixture
def evil(alexnet: ModelSetup) -> Iterator[list[EvilEdge]]:
    edges: list[EvilEdge] = []
    yield edges
    for edge in edges:
        edge.close()


BAD_REPLIES = {
    "wrong shape": lambda h, o: result(h, [o[0][:, :999]]),
    "wrong dtype": lambda h, o: result(h, [o[0].double()]),
    "no tensors": lambda h, o: pack(Kind.RESULT, {"id": h["id"], "edge_s": 0.0, "tensors": []}),
    "wrong kind": lambda h, o: pack(Kind.PONG, {"id": h["id"]}),
    "wrong request": lambda h, o: result(h, o, id=h["id"] + 1),
    "256 MiB reply": lambda h, o: pack(
        Kind.RESULT, {"id": h["id"], "edge_s": 0.0}, payload_len=256 * MIB
    ),
    "zstd bomb": lambda h, o: _bomb(h, "zstd"),
    "lz4 bomb": lambda h, o: _bomb(h, "lz4"),
    "int8 without scale": lambda h, o: result(h, o, tensors=[{**_meta(o), "quant": "int8"}]),
    "text edge_s": lambda h, o: result(h, o, edge_s="fast"),
    "list dtype": lambda h, o: result(h, o, tensors=[{**_meta(o), "dtype": ["float32"]}]),
    "huge shape": lambda h, o: result(h, o, tensors=[{**_meta(o), "shape": [0, 2**63]}]),
    "NaN edge_s": lambda h, o: result(h, o, edge_s=float("nan")),
    "negative edge_s": lambda h, o: result(h, o, edge_s=-1e9),
    "impossible edge_s": lambda h, o: result(h, o, edge_s=1e9),
}


def _meta(outputs: list[torch.Tensor]) -> dict[str, Any]:
    return encode_tensors(to_arrays(outputs))[0][0]


def _bomb(header: dict[str, Any], codec: str) -> bytes:
    import lz4.frame

    raw = bytes(MIB) if codec == "lz4" else bytes(20 * MIB)  # both fit the device's size cap
    data = lz4.frame.compress(raw) if codec == "lz4" else zstandard.ZstdCompressor().compress(raw)
    meta = {
        "dtype": "float32",
        "shape": [1, 1000],
        "codec": codec,
        "quant": "none",
        "raw_bytes": 4000,
        "bytes": len(data),
    }
    return pack(Kind.RESULT, {"id": header["id"], "edge_s": 0.0, "tensors": [meta]}, data)


@pytest.mark.parametrize("case", list(BAD_REPLIES))
def test_a_wrong_reply_is_refused_and_the_frame_answered_exactly(
    case: str, alexnet: ModelSetup, want: torch.Tensor, evil: list[EvilEdge]
) -> None:
    edge = EvilEdge(alexnet, BAD_REPLIES[case])
    evil.append(edge)
    client = device_client(
        "alexnet", alexnet.part, [0.0] * len(alexnet.part.cuts), edge.address, edge_timeout_s=5.0
    )
    reset_peak_memory()
    before = process_memory()["rss_bytes"]
    records = _run(client, FixedCut(CUT), [alexnet.inputs] * 2)
    growth = process_memory()["peak_rss_bytes"] - before
    assert [r.fallback for r in records] == [True, True], records
    assert all(r.error for r in records)
    assert all(torch.equal(out[0], want) for out in client.outputs)  # the device's own answer
    assert growth < 64 * MIB, f"the device's peak RSS grew {growth / MIB:.0f} MiB"


def test_coinfer_run_answers_every_frame_whatever_the_edge_sends(
    alexnet: ModelSetup, evil: list[EvilEdge]
) -> None:
    from typer.testing import CliRunner

    from coinfer.cli import app

    cases = ("int8 without scale", "text edge_s", "list dtype", "huge shape", "NaN edge_s")
    served = iter(range(10**6))  # one case per request, in turn

    def in_turn(header: dict[str, Any], outputs: list[torch.Tensor]) -> bytes | None:
        return BAD_REPLIES[cases[next(served) % len(cases)]](header, outputs)

    edge = EvilEdge(alexnet, in_turn)
    evil.append(edge)
    host, port = edge.address
    outcome = CliRunner().invoke(
        app,
        [
            "run",
            "--edge",
            f"{host}:{port}",
            "-m",
            "alexnet",
            "-p",
            f"fixed-{CUT}",
            "-n",
            str(len(cases)),
            "--device",
            "edge-pc*8",
            "--no-preflight",
            "--json",
        ],
    )
    # (its preflight would refuse this edge at once: it answers no PING)
    assert outcome.exit_code == 0 and outcome.exception is None, outcome.output
    summary = json.loads(outcome.stdout)
    assert summary["frames"] == summary["fallbacks"] == len(cases), summary
    assert len(summary["errors"]) == len(cases), summary["errors"]  # each named


def test_lies_about_edge_time_never_reach_the_learner(
    alexnet: ModelSetup, evil: list[EvilEdge], tmp_path: Path
) -> None:
    device = resolve_device("edge-pc/8")
    front = [f / 50 for f in CutCostModel(alexnet.part, device, resolve_device("edge-pc")).device_s]
    for case in ("NaN edge_s", "negative edge_s", "impossible edge_s"):
        edge = EvilEdge(alexnet, BAD_REPLIES[case])
        evil.append(edge)
        policy = TunedMuLinUCB(alexnet.part.cuts, front, delay_unit_s=front[-1] / 50)
        client = device_client("alexnet", alexnet.part, front, edge.address, edge_timeout_s=2.0)
        records = _run(client, policy, [alexnet.inputs] * 12)
        offloads = [r for r in records if r.cut != alexnet.part.last]
        assert offloads and all(r.fallback and "edge_s" in (r.error or "") for r in offloads)
        assert all(math.isfinite(v) for v in policy.stats.b)
        assert all(math.isfinite(v) for v in policy.stats.a.ravel())
        log = tmp_path / f"{case}.jsonl"
        write_log(records, log)
        for line in log.read_text().splitlines():  # strict JSON: no NaN
            json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the log"))
    assert not plausible(Feedback(0.1, float("nan"), 0.0, 0.0, 10))
    assert not plausible(Feedback(0.1, 0.2, -1e9, 0.0, 10))


def test_an_edge_that_never_reads_cannot_hold_the_device(evil: list[EvilEdge]) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)).eval()
    x = (torch.randn(1, 3, 512, 512),)
    big = ModelSetup(
        "big", net, partition(net, x), x
    )  # cut 1 sends 16 MiB: more than the kernel buffers
    edge = EvilEdge(big, lambda h, o: None, read=False)
    evil.append(edge)
    client = device_client(
        "big",
        big.part,
        [0.0] * len(big.part.cuts),
        edge.address,
        edge_timeout_s=1.0,
        connect_timeout_s=0.5,
    )
    records = _run(client, FixedCut(1), [x] * 2)
    deadline = client.offload_deadline_s(16 * MIB)
    assert all(r.fallback for r in records)
    assert all(r.uplink_s <= deadline + 5.0 for r in records), [r.uplink_s for r in records]


def test_a_stopped_edge_cannot_hold_the_device(
    edges: Edges, alexnet: ModelSetup, want: torch.Tensor
) -> None:
    server = edges.open  # a real edge server, SIGSTOPped, then resumed
    try:
        os.kill(server.pid, signal.SIGSTOP)
        client = device_client(
            "alexnet",
            alexnet.part,
            [0.0] * len(alexnet.part.cuts),
            server.address,
            edge_timeout_s=1.0,
        )
        records = _run(client, FixedCut(0), [alexnet.inputs] * 2)
        deadline = client.offload_deadline_s(alexnet.part.cuts[0].boundary_bytes)
        assert all(r.fallback for r in records)
        assert all(r.uplink_s <= deadline + 5.0 for r in records), [r.uplink_s for r in records]
        assert all(torch.equal(out[0], want) for out in client.outputs)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert server.alive()


@pytest.mark.parametrize("asked", ["PING", "STATS"])
def test_the_preflight_takes_no_payload_an_edge_announces(asked: str) -> None:
    """An edge answering the preflight's PING or STATS with a 256 MiB payload (the device once
    read it all: RSS +512 MiB) is refused at the announcement, before a byte is allocated."""
    from coinfer.device.endpoint import Endpoint
    from coinfer.device.requests import edge_stats, round_trips
    from coinfer.wire.protocol import ErrorCode, ProtocolError
    from tests.peers import read_reply

    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            request = read_reply(conn)
            assert request is not None
            kind = Kind.PONG if asked == "PING" else Kind.RESULT
            header = {"id": request[1]["id"], "stats": {}}
            conn.sendall(pack(kind, header, payload_len=256 * MIB))
            with contextlib.suppress(OSError):  # the device refuses it and hangs up: expected
                conn.sendall(bytes(MIB))  # the start of it, for a device that would read on

    server = threading.Thread(target=answer, daemon=True)
    server.start()
    endpoint = Endpoint(listener.getsockname())
    ask = round_trips(endpoint, 1, 30.0) if asked == "PING" else edge_stats(endpoint, 30.0)
    try:
        with pytest.raises(ProtocolError) as refused:
            asyncio.run(ask)
    finally:
        listener.close()
    assert refused.value.code is ErrorCode.TOO_LARGE
    assert "payload of 268435456 bytes > limit 0" in str(refused.value)
