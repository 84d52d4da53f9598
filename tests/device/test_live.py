"""Edge server and device client on real loopback sockets: exact outputs, clear errors for
every kind of bad input while others keep being served, and no frame lost when the edge dies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from coinfer.assembly import ModelSetup, load_model
from coinfer.device.client import DeviceClient
from coinfer.device.records import summary
from coinfer.device.streams import read_message
from coinfer.dtypes import to_arrays
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import BackgroundServer
from coinfer.edge.store import ModelStore
from coinfer.latency.devices import resolve_device
from coinfer.latency.predict import CutCostModel
from coinfer.policies.static import FixedCut
from coinfer.wire.protocol import PREFIX, ErrorCode, Kind, Limits, pack
from coinfer.wire.tensors import encode_tensors
from tests.peers import device_client, run_live

SECRET = "s3cret-of-16-bytes"  # an edge refuses tokens shorter than 16 bytes


@pytest.fixture(scope="module")
def alexnet() -> ModelSetup:
    return load_model("alexnet")


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore(["alexnet"])


def _client(model: ModelSetup, address: tuple[str, int] | None, **options: Any) -> DeviceClient:
    front = [0.0] * len(model.part.cuts)  # no device emulation: as fast as this host
    return device_client(model.name, model.part, front, address, **options)


class _Cycle(FixedCut):
    """Every cut in turn."""

    def __init__(self, cuts: list[int]) -> None:
        super().__init__(0)
        self.cuts, self.i = cuts, 0

    def select(self, ctx: object):
        from coinfer.policies.types import Action

        self.i += 1
        return Action(self.cuts[(self.i - 1) % len(self.cuts)])


def test_outputs_equal_the_monolithic_model(alexnet: ModelSetup, store: ModelStore) -> None:
    net = alexnet.torch_path().graph_module
    x = alexnet.inputs
    with torch.no_grad():
        want = net(*x)
    cuts = [0, 4, 8, 15, 19, alexnet.part.last]
    with BackgroundServer(store) as server:
        for codec in ("none", "lz4"):
            client = _client(alexnet, server.address, codec=codec)
            records = asyncio.run(run_live(client, _Cycle(cuts), [x] * len(cuts)))
            assert [r.cut for r in records] == cuts
            assert all(r.offloaded for r in records[:-1]) and not any(r.fallback for r in records)
            for out in client.outputs:
                assert torch.equal(out[0], want)  # bit-exact through the wire
        stats = server.server.stats.summary()
    assert stats["requests"] == 2 * (len(cuts) - 1) and not stats["errors"]


async def _raw(address: tuple[str, int], data: bytes) -> list:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(data)
    await writer.drain()
    replies = []
    while True:
        msg = await asyncio.wait_for(read_message(reader, Limits()), 10)
        if msg is None:
            break
        replies.append(msg)
        if len(replies) >= 2:
            break
    writer.close()
    return replies


def test_bad_requests_get_named_errors_and_others_are_served(
    alexnet: ModelSetup, store: ModelStore
) -> None:
    boundary = alexnet.torch_path().split(8)[0](*alexnet.inputs)
    good_metas, good_payload = encode_tensors(to_arrays(boundary))
    ping = pack(Kind.PING, {"id": 99})
    fp = alexnet.part.fingerprint

    def infer(**header: object) -> bytes:
        base = {"id": 1, "model": "alexnet", "cut": 8, "fp": fp, "tensors": good_metas}
        return pack(Kind.INFER, {**base, **header}, good_payload)

    shape = list(boundary[0].shape)
    wrong_shape, payload = encode_tensors(to_arrays([torch.zeros(*shape[:-1], shape[-1] - 1)]))
    wrong_dtype, payload16 = encode_tensors(to_arrays([b.half() for b in boundary]))
    cases = [
        (infer(model="resnet999"), ErrorCode.UNKNOWN_MODEL, "not served here"),
        (infer(cut=40), ErrorCode.BAD_CUT, "must be in 0..22"),
        (
            infer(fp=bytes(16)),
            ErrorCode.WRONG_MODEL,
            f"the device's fingerprint {'0' * 12}, the edge's {fp.hex()[:12]}",
        ),
        (infer(fp="a string"), ErrorCode.BAD_HEADER, "needs 'fp'"),
        (infer(fp=fp + b"x"), ErrorCode.BAD_HEADER, "needs 'fp'"),
        (
            pack(
                Kind.INFER,
                {"id": 1, "model": "alexnet", "cut": 8, "fp": fp, "tensors": wrong_shape},
                payload,
            ),
            ErrorCode.BAD_TENSOR,
            f"takes {shape} float32",
        ),
        (
            pack(
                Kind.INFER,
                {"id": 1, "model": "alexnet", "cut": 8, "fp": fp, "tensors": wrong_dtype},
                payload16,
            ),
            ErrorCode.BAD_TENSOR,
            f"got {shape} float16",
        ),
        (PREFIX.pack(b"CF", 1, 1, 3, 0) + b"\xc1\xc1\xc1", ErrorCode.BAD_HEADER, "not msgpack"),
    ]
    with BackgroundServer(store) as server:
        good = _client(alexnet, server.address)
        for wire, code, text in cases:
            replies = asyncio.run(_raw(server.address, wire + ping))
            assert replies[0].kind is Kind.ERROR and replies[0].header["code"] == code
            assert text in replies[0].header["message"]
            assert replies[1].kind is Kind.PONG  # the connection is still usable
        fatal = [
            (b"GET / HTTP/1.1\r\n\r\n", ErrorCode.BAD_FRAME),
            (PREFIX.pack(b"CF", 1, 1, 10, 2**31), ErrorCode.TOO_LARGE),
        ]
        for wire, code in fatal:
            replies = asyncio.run(_raw(server.address, wire + ping))
            assert [r.header["code"] for r in replies] == [code]  # and then closed
        # a client that disconnects mid-message
        with socket.create_connection(server.address) as sock:
            sock.sendall(infer()[:100])
        # everyone else is still served, exactly
        records = asyncio.run(run_live(good, FixedCut(8), [alexnet.inputs] * 3))
        assert all(r.offloaded for r in records)
        errors = server.server.stats.summary()["errors"]
    assert errors["BAD_TENSOR"] == 2 and errors["BAD_FRAME"] >= 2


def test_a_trickling_connection_times_out_while_others_are_served(
    alexnet: ModelSetup, store: ModelStore
) -> None:
    wire = pack(Kind.PING, {"id": 5, "pad": "x" * 40})
    with BackgroundServer(store, ServerOptions(read_timeout_s=0.6)) as server:
        with socket.create_connection(server.address) as slow:
            slow.settimeout(0.2)
            good = _client(alexnet, server.address)
            reply, sent, start = b"", 0, time.monotonic()
            while not reply and sent < len(wire):  # one byte every 0.2 s, until the server speaks
                slow.sendall(wire[sent : sent + 1])
                sent += 1
                records = asyncio.run(run_live(good, FixedCut(15), [alexnet.inputs]))
                assert records[0].offloaded  # served meanwhile
                with contextlib.suppress(TimeoutError):
                    reply = slow.recv(4096)
        assert time.monotonic() - start >= 0.6 and sent < len(wire)  # not before its deadline
        assert reply[:2] == b"CF" and reply[3] == Kind.ERROR
        assert b"no whole message within" in reply
        assert server.server.stats.summary()["errors"]["TIMEOUT"] == 1


def test_edge_killed_mid_run_every_frame_still_answered(alexnet: ModelSetup) -> None:
    store = ModelStore(["alexnet"])
    device = resolve_device("edge-pc/8")
    front = CutCostModel(alexnet.part, device, resolve_device("edge-pc")).device_s
    server = BackgroundServer(store)
    server.__enter__()
    client = device_client(
        "alexnet", alexnet.part, [f / 50 for f in front], server.address, edge_timeout_s=1.0
    )
    frames = [alexnet.inputs] * 12

    def kill_after_four(record: object) -> None:
        if getattr(record, "frame", -1) == 3:
            server.stop()

    records = asyncio.run(run_live(client, FixedCut(0), frames, on_frame=kill_after_four))
    assert len(records) == 12 and len(client.outputs) == 12
    assert all(r.offloaded for r in records[:4])
    assert all(r.fallback for r in records[4:])
    with torch.no_grad():
        want = alexnet.torch_path().graph_module(*alexnet.inputs)
    assert all(torch.equal(out[0], want) for out in client.outputs)
    s = summary(records)
    assert (s["frames"], s["offloaded"], s["fallbacks"]) == (12, 4, 8)
    # no edge at all, from the start: the device answers alone
    nowhere = _client(alexnet, ("127.0.0.1", _free_port()))
    alone = asyncio.run(run_live(nowhere, FixedCut(8), frames[:2]))
    assert all(r.fallback for r in alone) and len(nowhere.outputs) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_auth_token_and_control(alexnet: ModelSetup, store: ModelStore) -> None:
    with BackgroundServer(store, ServerOptions(token=SECRET)) as server:
        without = _client(alexnet, server.address)
        records = asyncio.run(run_live(without, FixedCut(8), [alexnet.inputs]))
        assert records[0].fallback and "UNAUTHORIZED" in (records[0].error or "")
        with_token = _client(alexnet, server.address, token=SECRET)
        assert asyncio.run(run_live(with_token, FixedCut(8), [alexnet.inputs]))[0].offloaded

        async def control() -> float:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(pack(Kind.CONTROL, {"id": 1, "slowdown": 3.0, "token": SECRET}))
            msg = await read_message(reader, Limits())
            writer.close()
            assert msg is not None
            return float(msg.header["slowdown"])

        assert asyncio.run(control()) == 3.0 and server.server.slowdown == 3.0
        slow = asyncio.run(run_live(with_token, FixedCut(8), [alexnet.inputs]))[0]
        assert slow.edge_s >= 3.0 * min(server.server.stats.edge_s) / 3.0 * 0.99


def test_demo_runs_three_devices_and_writes_its_plot(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from coinfer.cli import app

    result = CliRunner().invoke(app, ["demo", "--duration", "6", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {r["policy"]: r for r in doc["rows"]}
    assert set(rows) == {"mulinucb-link", "edge-only", "device-only"}
    # how many frames fit in 6 s depends on the machine (the loop runs one at least); every
    # frame is answered: offloaded, or (an edge 30x slower than a loaded host may pass the 5 s
    # edge timeout) finished on the device, in a share that depends on the machine too
    for row in rows.values():
        assert row["frames"] >= 1
    edge_only = rows["edge-only"]
    assert edge_only["offloaded"] + edge_only["fallbacks"] == edge_only["frames"]
    assert rows["device-only"]["offloaded"] == rows["device-only"]["fallbacks"] == 0
    assert isinstance(doc["held"], bool) and doc["expected"]
    assert (tmp_path / "ans" / "ans.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "ans" / "table.json").read_text())["rows"] == doc["rows"]


def test_sixteen_devices_at_once_with_and_without_batching(alexnet: ModelSetup) -> None:
    with torch.no_grad():
        want = alexnet.torch_path().graph_module(*alexnet.inputs)
    for window_s in (0.0, 0.005):
        store = ModelStore.of({"alexnet": (alexnet.torch_path(), alexnet.inputs)})
        with BackgroundServer(store, ServerOptions(batch_window_s=window_s)) as server:
            clients = [_client(alexnet, server.address, edge_timeout_s=30.0) for _ in range(16)]

            async def together(clients: list[DeviceClient] = clients) -> list:
                return await asyncio.gather(
                    *(run_live(c, FixedCut(15), [alexnet.inputs] * 3) for c in clients)
                )

            results = asyncio.run(together())
            stats = server.server.stats.summary()
        assert all(r.offloaded and not r.fallback for rs in results for r in rs), [
            r.error for rs in results for r in rs if r.error
        ]
        assert stats["requests"] == 48 and not stats["errors"]
        for c in clients:  # batched or not, every device gets its own exact answer
            assert all(torch.allclose(out[0], want, atol=1e-5) for out in c.outputs)
        if window_s:
            assert stats["batched_requests"] == 48 and stats["batches"] < 48


def test_run_cli_against_a_server(alexnet: ModelSetup, store: ModelStore, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from coinfer.cli import app

    log = tmp_path / "frames.jsonl"
    with BackgroundServer(store) as server:
        host, port = server.address
        args = [
            "run",
            "--edge",
            f"{host}:{port}",
            "-m",
            "alexnet",
            "-p",
            "mulinucb-link",
            "-n",
            "12",
            "--device",
            "edge-pc/20",
            "--bandwidth",
            "20mbps",
            "--codec",
            "lz4",
            "--log",
            str(log),
            "--json",
        ]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["frames"] == 12 and out["fallbacks"] == 0 and out["offloaded"] >= 1
    assert out["mean_latency_s"] > 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 12 and {"cut", "total_s", "uplink_s", "edge_s"} <= lines[0].keys()
    bad = CliRunner().invoke(app, ["run", "--edge", "nowhere", "-n", "1"])
    assert bad.exit_code == 2 and "HOST:PORT" in bad.output


def test_serve_cli_stops_gracefully_on_sigint(alexnet: ModelSetup) -> None:
    import signal
    import subprocess
    import sys

    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinfer.cli",
            "serve",
            "--port",
            str(port),
            "-m",
            "alexnet",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = ""
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the server did not start"
        client = _client(alexnet, ("127.0.0.1", port))
        assert all(
            r.offloaded for r in asyncio.run(run_live(client, FixedCut(8), [alexnet.inputs] * 2))
        )
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    doc = json.loads(stdout)  # --json: the statistics at exit as one document
    assert doc["stopped"] and doc["edge"] == f"127.0.0.1:{port}"
    stats = doc["stats"]
    assert stats["requests"] == 2 and stats["connections"] >= 1


@pytest.mark.parametrize("system", ["edgent", "stopping"])
def test_the_other_demos_run_and_say_what_to_expect(system: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from coinfer.cli import app

    result = CliRunner().invoke(
        app, ["demo", "--system", system, "--duration", "4", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["system"] == system and isinstance(doc["held"], bool) and doc["expected"]
    rows = {r["policy"]: r for r in doc["rows"]}
    if system == "edgent":
        assert set(rows) == {"edgent-dynamic", "edgent", "device-only"}
        for row in rows.values():  # every frame a held-out digit: its answer checked
            assert row["frames"] >= 1 and row["accuracy"] is not None and row["fallbacks"] == 0
    else:
        assert set(rows) == {"stopping", "fixed-split", "edge-only", "device-only"}
        for row in rows.values():
            assert row["tasks"] >= 20 and row["fallbacks"] == 0 and row["mean_cost"] > 0
    assert (tmp_path / system / f"{system}.png").read_bytes()[:4] == b"\x89PNG"
