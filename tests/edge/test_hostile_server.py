"""The edge server against hostile peers (DESIGN §5; issue findings 1-4 and 9-12): a real
`coinfer serve` in its own process, attacked over loopback while a well-behaved device is
served. Each attack checks that the server's peak RSS grew by no more than its memory budget,
that the good device got only exact answers, and (at the end) that the server never printed a
traceback."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import zstandard

from coinfer.assembly import ModelSetup, load_model
from coinfer.device.client import DeviceClient
from coinfer.device.endpoint import device_tls
from coinfer.dtypes import to_arrays
from coinfer.policies.static import FixedCut
from coinfer.wire.messages import StatsRequest, encode
from coinfer.wire.protocol import PREFIX, ErrorCode, Kind, pack
from coinfer.wire.tensors import encode_tensors
from tests.edges import BUDGET_MB, TLS_SLOTS, TOKEN, Edges
from tests.peers import (
    ATTACKER,
    MIB,
    GoodDevice,
    Served,
    background,
    closed_by_peer,
    connect,
    device_client,
    fresh_source,
    infer,
    read_reply,
    run_live,
    stats,
)

CUT = 15  # alexnet after pool5: a [1, 256, 6, 6] float32 boundary (36,864 bytes)


@pytest.fixture(scope="module")
def alexnet() -> ModelSetup:
    return load_model("alexnet")


@pytest.fixture(scope="module")
def guarded(edges: Edges, alexnet: ModelSetup) -> Served:
    """The server with a token, a 64 MiB budget and short deadlines, warmed up."""
    good = GoodDevice(alexnet, edges.guarded.address, TOKEN, cuts=(0, 8, 15, 22)).run(2)
    assert good.correct == 8, good.errors
    return edges.guarded


def under_attack(
    server: Served, alexnet: ModelSetup, attack: Callable[[], Any], frames: int = 3
) -> Any:
    """Run ``attack`` while a good device is served; the attack's result."""
    server.reset_peak()
    before = server.rss()
    with background(attack) as result:
        good = GoodDevice(alexnet, server.address, TOKEN, cuts=(CUT,)).run(frames)
    growth = server.peak_rss() - before
    assert server.alive()
    assert growth <= BUDGET_MB * MIB, f"peak RSS grew {growth / MIB:.0f} MiB"
    assert good.wrong == 0 and good.correct == good.offloaded == frames, good.errors
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _boundary(**meta: Any) -> list[dict[str, Any]]:
    entry = {
        "dtype": "float32",
        "shape": [1, 256, 6, 6],
        "codec": "none",
        "quant": "none",
        "raw_bytes": 36864,
        "bytes": 36864,
    }
    return [{**entry, **meta}]


def _answers(address: tuple[str, int], messages: list[bytes]) -> list[tuple[Kind, dict]]:
    """Each message on one connection, in turn, with its reply."""
    replies = []
    with connect(address) as sock:
        for wire in messages:
            sock.sendall(wire)
            reply = read_reply(sock)
            assert reply is not None, "the server closed the connection"
            replies.append(reply[:2])
    return replies


def test_decompression_and_dequantisation_bombs(guarded: Served, alexnet: ModelSetup) -> None:
    big = bytes(200 * MIB)
    declared = zstandard.ZstdCompressor().compress(big)  # declares 200 MiB in its header
    chunker = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    undeclared = chunker.compress(big) + chunker.flush()  # does not
    import lz4.frame

    lz4_bomb = lz4.frame.compress(bytes(8 * MIB))  # fits the size bound, gives 8 MiB
    huge = lz4.frame.compress(big)  # beyond what 36,864 bytes ever compress to
    del big
    int8_data = zstandard.ZstdCompressor().compress(bytes(10**7))
    int8 = _boundary(
        shape=[1, 10**7],
        quant="int8",
        scale=1.0,
        zero=0.0,
        raw_bytes=10**7,
        codec="zstd",
        bytes=len(int8_data),
    )
    many = _boundary(shape=[2**20, 64], raw_bytes=2**28, bytes=0) * 64

    def attack() -> list[tuple[Kind, dict]]:
        wires = [
            infer("alexnet", CUT, _boundary(codec="zstd", bytes=len(declared)), declared, TOKEN),
            infer(
                "alexnet", CUT, _boundary(codec="zstd", bytes=len(undeclared)), undeclared, TOKEN
            ),
            infer("alexnet", CUT, _boundary(codec="lz4", bytes=len(lz4_bomb)), lz4_bomb, TOKEN),
            infer("alexnet", CUT, _boundary(codec="lz4", bytes=len(huge)), huge, TOKEN),
            infer("alexnet", CUT, int8, int8_data, TOKEN),
            infer("alexnet", CUT, many, b"", TOKEN),
        ]
        return _answers(guarded.address, wires)

    replies = under_attack(guarded, alexnet, attack)
    assert [kind for kind, _ in replies] == [Kind.ERROR] * 6
    codes = [header["code"] for _, header in replies]
    assert codes[:5] == [ErrorCode.BAD_TENSOR] * 5, replies
    assert codes[5] in (ErrorCode.BAD_TENSOR, ErrorCode.TOO_LARGE)
    assert "declares 209715200 bytes" in replies[0][1]["message"]
    assert "more than 36864" in replies[1][1]["message"]
    assert "more than 36864" in replies[2][1]["message"]
    assert "more than lz4 ever takes" in replies[3][1]["message"]


def test_announcing_a_payload_allocates_nothing(guarded: Served, alexnet: ModelSetup) -> None:
    def attack() -> list[bool]:
        socks = [connect(guarded.address) for _ in range(20)]
        for sock in socks:  # a prefix announcing 256 MiB, then nothing
            sock.sendall(PREFIX.pack(b"CF", 1, int(Kind.INFER), 100, 256 * MIB))
        # without the token, the header is refused before a payload byte is taken
        # built before connecting: a first fingerprint_of takes longer than the idle deadline
        tokenless = infer("alexnet", CUT, _boundary(), payload_len=256 * MIB)
        stranger = connect(guarded.address)
        stranger.sendall(tokenless)
        refused = read_reply(stranger)
        assert refused is not None and refused[1]["code"] == ErrorCode.UNAUTHORIZED
        closed = [closed_by_peer(sock) for sock in [*socks, stranger]]  # read timeout: 2 s
        for sock in socks:
            sock.close()
        return closed

    assert all(under_attack(guarded, alexnet, attack))


def test_failed_logins_hold_no_slot(guarded: Served, alexnet: ModelSetup) -> None:
    """As many wrong-token peers as there are slots, each answered UNAUTHORIZED and left open
    (the server then waits 1 s for them to close): a good device is served meanwhile, not told
    BUSY — a closing connection holds no slot."""
    wrong = infer("alexnet", CUT, _boundary(), b"", "not-the-token-but-long")
    good = GoodDevice(alexnet, guarded.address, TOKEN, cuts=(CUT,))
    socks = [connect(guarded.address) for _ in range(64)]  # --max-connections 64
    try:
        for sock in socks:
            sock.sendall(wrong)
        replies = [read_reply(sock) for sock in socks]
        served = good.run(3)
    finally:
        for sock in socks:
            sock.close()
    assert all(r is not None and r[1]["code"] == ErrorCode.UNAUTHORIZED for r in replies)
    assert served.correct == served.offloaded == 3, served.errors


def test_strangers_mid_message_hold_no_slot(guarded: Served, alexnet: ModelSetup) -> None:
    """Every slot taken by a peer that has sent the first bytes of a PING and stalls (as a
    chain of trickled PINGs or a reconnecting staller does, never idle, never past the read
    deadline): a good device is served, each stranger making room in turn."""
    ping = pack(Kind.PING, {"id": 1})
    good = GoodDevice(alexnet, guarded.address, TOKEN, cuts=(CUT,))
    socks = [connect(guarded.address) for _ in range(64)]  # --max-connections 64
    try:
        for sock in socks:
            sock.sendall(ping[:3])
        served = good.run(3)
    finally:
        for sock in socks:
            sock.close()
    assert served.correct == served.offloaded == 3, served.errors


def test_a_peer_that_never_reads_is_dropped(guarded: Served, alexnet: ModelSetup) -> None:
    boundary = list(alexnet.torch_path().split(22)[0](*alexnet.inputs))
    metas, payload = encode_tensors(to_arrays(boundary))
    request = infer("alexnet", 22, metas, bytes(payload), TOKEN)
    control = pack(Kind.CONTROL, {"id": 2, "slowdown": 1.0, "token": TOKEN})
    before = stats(guarded, TOKEN)["events"].get("write_timeouts", 0)

    def attack() -> bool:
        sock = connect(guarded.address, rcvbuf=4096)
        try:
            for _ in range(3000):  # requests and CONTROLs pipelined; no reply is ever read
                sock.sendall(request + control)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # dropped while still sending
        return closed_by_peer(sock)

    assert under_attack(guarded, alexnet, attack)
    assert stats(guarded, TOKEN)["events"]["write_timeouts"] > before


def test_control_needs_the_token_and_a_sane_slowdown(guarded: Served) -> None:
    def control(value: Any, token: str | None = TOKEN) -> dict:
        header = {"id": 3, "slowdown": value, **({"token": token} if token else {})}
        return _answers(guarded.address, [pack(Kind.CONTROL, header)])[0][1]

    assert control(2.0, None)["code"] == ErrorCode.UNAUTHORIZED
    for bad in (float("inf"), 1e308, "inf", True, 0.5, -1, None):
        assert control(bad)["code"] == ErrorCode.BAD_HEADER, bad
    assert control(2.0)["slowdown"] == 2.0
    assert control(1)["slowdown"] == 1.0
    with pytest.raises(Exception, match="UNAUTHORIZED"):
        stats(guarded)  # STATS needs the token too


def test_without_a_token_control_is_off(edges: Edges) -> None:
    reply = _answers(edges.open.address, [pack(Kind.CONTROL, {"id": 4, "slowdown": 1e308})])
    assert (
        reply[0][1]["code"] == ErrorCode.UNSUPPORTED and "--allow-control" in reply[0][1]["message"]
    )


def test_idle_connections_are_closed_and_cannot_lock_out(
    guarded: Served, alexnet: ModelSetup
) -> None:
    def attack() -> list[bool]:
        socks = [connect(guarded.address) for _ in range(100)]  # limit 64, idle timeout 3 s
        closed = [closed_by_peer(sock) for sock in socks]
        for sock in socks:
            sock.close()
        return closed

    assert all(under_attack(guarded, alexnet, attack))
    events = stats(guarded, TOKEN)["events"]
    assert events.get("evicted", 0) + events.get("idle_closed", 0) >= 100


def test_out_of_file_descriptors(edges: Edges, alexnet: ModelSetup) -> None:
    server = edges.few_fds  # started under ulimit -n 256
    socks = [connect(server.address) for _ in range(300)]  # more than it may open
    time.sleep(0.5)
    good = GoodDevice(alexnet, server.address, TOKEN, cuts=(CUT,)).run(2)
    assert good.correct == good.offloaded == 2, good.errors
    for sock in socks:
        sock.close()
    assert server.alive() and "Traceback" not in server.stderr()
    lines = server.stderr().splitlines()
    after_start = lines[next(i for i, line in enumerate(lines) if "fingerprint" in line) + 1 :]
    assert len(after_start) <= 2, server.stderr()  # the flood: a line per kind, not per accept
    assert "lowered to 192" in server.stderr()  # the limit was kept below ulimit -n


def test_an_unknown_kind_is_answered_and_the_connection_closed(guarded: Served) -> None:
    with connect(guarded.address) as sock:
        sock.sendall(PREFIX.pack(b"CF", 1, 99, 0, 0))
        reply = read_reply(sock)
        assert reply is not None and reply[1]["code"] == ErrorCode.UNSUPPORTED
        junk = bytes(1024 * 1024)
        sent = 0
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(10_000):  # the server stops reading: it cannot be kept busy
                sock.sendall(junk)
                sent += len(junk)
        assert sent < 1024 * MIB


def test_tokens_are_bytes_compared(guarded: Served, alexnet: ModelSetup) -> None:
    for wrong in ("s3crét-Π", "ünïcödé", ""):
        reply = _answers(guarded.address, [infer("alexnet", CUT, _boundary(), bytes(36864), wrong)])
        assert reply[0][1]["code"] == ErrorCode.UNAUTHORIZED, wrong
    good = GoodDevice(alexnet, guarded.address, TOKEN, cuts=(CUT,)).run(1)
    assert good.correct == 1  # the server's own non-ASCII token works


def test_bad_tensors_and_fields_are_named(guarded: Served) -> None:
    cases = [
        (_boundary(dtype=["float32"]), ErrorCode.BAD_TENSOR, "dtype"),
        (_boundary(shape=[0, 2**63]), ErrorCode.BAD_TENSOR, "bad shape"),
        (_boundary(quant="int8", raw_bytes=9216, bytes=9216), ErrorCode.BAD_TENSOR, "scale"),
        (_boundary(dtype="int64", quant="fp16"), ErrorCode.BAD_TENSOR, "floating"),
        (_boundary(bytes="36864"), ErrorCode.BAD_TENSOR, "not a size"),
        ([["not", "a", "map"]], ErrorCode.BAD_HEADER, "must be a map"),
    ]
    for metas, code, text in cases:
        reply = _answers(guarded.address, [infer("alexnet", CUT, metas, bytes(36864), TOKEN)])
        assert reply[0][1]["code"] == code and text in reply[0][1]["message"], reply
    reply = _answers(
        guarded.address, [infer("alexnet", CUT, _boundary(), bytes(36864), TOKEN, exit=3)]
    )
    assert reply[0][1]["code"] == ErrorCode.BAD_CUT and "exit 3" in reply[0][1]["message"]
    with connect(guarded.address) as sock:  # fewer than 12 bytes, then the end
        sock.sendall(b"CF\x01")
        sock.shutdown(socket.SHUT_WR)
        answer = read_reply(sock)
        assert answer is not None and answer[1]["code"] == ErrorCode.BAD_FRAME


def test_tls_with_a_certificate_made_here(
    edges: Edges, alexnet: ModelSetup, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from coinfer.cli import app

    def device(tls: ssl.SSLContext | None) -> DeviceClient:
        front = [0.0] * len(alexnet.part.cuts)
        return device_client(
            "alexnet",
            alexnet.part,
            front,
            edges.tls.address,
            token=TOKEN,
            edge_timeout_s=5.0,
            tls=tls,
        )

    trusted = device(device_tls(edges.ca))
    records = asyncio.run(run_live(trusted, FixedCut(CUT), [alexnet.inputs] * 2))
    assert all(r.offloaded for r in records), [r.error for r in records]
    with torch.no_grad():
        want = alexnet.torch_path().graph_module(*alexnet.inputs)
    assert all(torch.allclose(out[0], want, atol=1e-5) for out in trusted.outputs)
    for stranger, text in ((device(None), ""), (device(device_tls()), "CERTIFICATE_VERIFY")):
        (record,) = asyncio.run(run_live(stranger, FixedCut(CUT), [alexnet.inputs]))
        assert record.fallback and text in (record.error or ""), record.error
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    host, port = edges.tls.address
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
            "2",
            "--device",
            "edge-pc*8",
            "--tls-ca",
            str(edges.ca),
            "--token-file",
            str(token_file),
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["offloaded"] == 2
    assert stats(edges.tls, TOKEN, device_tls(edges.ca))["requests"] >= 4


def test_tls_handshakes_take_slots_and_end_at_their_deadline(edges: Edges) -> None:
    """Finding 8: sockets that never begin their handshake held a descriptor each, outside
    --max-connections, for the whole handshake timeout."""

    def descriptors() -> int:
        return len(list(Path(f"/proc/{edges.tls.pid}/fd").iterdir()))

    trusted = device_tls(edges.ca)
    stats(edges.tls, TOKEN, trusted)  # whatever the server opens on its first requests
    before = descriptors()
    source = fresh_source()
    silent = [connect(edges.tls.address, source=source) for _ in range(3 * TLS_SLOTS)]
    seen = stats(edges.tls, TOKEN, trusted)  # accepted after them all: served by evicting one
    assert seen["open_connections"] <= TLS_SLOTS, seen
    assert seen["events"].get("evicted", 0) >= 2 * TLS_SLOTS, seen["events"]
    assert descriptors() <= before + TLS_SLOTS + 2
    assert all(closed_by_peer(sock) for sock in silent)  # the last: at the 3 s handshake deadline
    for sock in silent:
        sock.close()
    assert stats(edges.tls, TOKEN, trusted)["events"]["handshakes_failed"] >= 3 * TLS_SLOTS


def test_serve_refuses_what_would_expose_it() -> None:
    from typer.testing import CliRunner

    from coinfer.cli import app

    cases = [
        (["serve", "--token", ""], "token is empty"),
        (["serve", "--host", "0.0.0.0"], "--insecure"),
        (["serve", "--token", "k9"], "the auth token has 2 bytes: an edge's needs at least 16"),
        (["serve", "--token-file", "/nonexistent/token"], "cannot read the token file"),
        (["serve", "--tls-cert", "/nonexistent/cert.pem"], "cannot load the TLS certificate"),
        (["serve", "--tls-key", "/nonexistent/key.pem"], "needs --tls-cert"),
        (["run", "--tls-ca", "/nonexistent/ca.pem"], "cannot load the TLS CA"),
    ]
    for args, text in cases:
        outcome = CliRunner().invoke(app, args, env={"COINFER_TOKEN": ""})
        assert outcome.exit_code == 2 and text in outcome.output, (args, outcome.output)
        assert outcome.exception is None or isinstance(outcome.exception, SystemExit)


def test_memory_is_given_back_after_a_burst(guarded: Served, alexnet: ModelSetup) -> None:
    metas, raw = encode_tensors(to_arrays(list(alexnet.inputs)))  # cut 0: 602 KB each
    wire = infer("alexnet", 0, metas, bytes(raw), TOKEN)
    base = guarded.rss()
    guarded.reset_peak()
    socks = [connect(guarded.address) for _ in range(60)]
    for sock in socks:  # all but the last byte: the server holds 60 payloads at once
        sock.sendall(wire[:-1])
    time.sleep(0.5)
    for sock in socks:
        sock.sendall(wire[-1:])
    replies = [read_reply(sock) for sock in socks]
    for sock in socks:
        sock.close()
    assert all(r is not None and r[0] is Kind.RESULT for r in replies)
    assert guarded.peak_rss() - base > 24 * MIB  # the burst was real
    for _ in range(100):  # given back once it is over (malloc_trim), not kept for good
        if guarded.rss() - base < 12 * MIB:
            break
        time.sleep(0.2)
    assert guarded.rss() - base < 12 * MIB, f"{(guarded.rss() - base) / MIB:.0f} MiB kept"
    assert stats(guarded, TOKEN)["events"].get("trims", 0) >= 1


def test_a_device_is_told_why_it_cannot_use_the_edge(guarded: Served) -> None:
    """Before its first frame, in one line with exit 2: a wrong token, a model not served, a
    port nobody listens on (each used to be exit 0 with every frame on the device)."""
    from typer.testing import CliRunner

    from coinfer.cli import app

    runner = CliRunner()
    edge = f"{guarded.address[0]}:{guarded.address[1]}"
    cases = [
        (["--edge", edge, "-m", "alexnet", "--token", "not-the-token"], "refused the token"),
        (["--edge", edge, "-m", "mlp", "--token", TOKEN], "not 'mlp'"),
        (["--edge", f"127.0.0.1:{_free_port()}", "-m", "alexnet"], "nothing listens"),
        (["--edge", "no-such-host.invalid:8765", "-m", "alexnet"], "cannot resolve host"),
    ]
    for args, reason in cases:
        result = runner.invoke(app, ["run", *args, "-n", "2"])
        assert result.exit_code == 2, result.output
        assert reason in " ".join(result.output.split()) and "Traceback" not in result.output


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stats_from(guarded: Served, source: str, token: str) -> dict[str, Any]:
    sock = connect(guarded.address, source=source)
    try:
        sock.sendall(encode(StatsRequest(1, token)))
        reply = read_reply(sock)
    finally:
        sock.close()
    assert reply is not None
    return reply[1]


def test_wrong_tokens_slow_their_own_address_down_and_no_other(guarded: Served) -> None:
    """After a few wrong tokens an address is refused unchecked, with back-off (a right guess
    would pass unnoticed otherwise); another address logs in meanwhile."""
    guesser, device = fresh_source(), fresh_source()
    answers = [_stats_from(guarded, guesser, f"guess-number-{i:04d}-xx") for i in range(8)]
    assert all(a["code"] == ErrorCode.UNAUTHORIZED for a in answers)
    assert "too many wrong tokens" in answers[-1]["message"]
    held_back = _stats_from(guarded, guesser, TOKEN)  # the right token, unchecked: refused
    assert held_back["code"] == ErrorCode.UNAUTHORIZED and "try again" in held_back["message"]
    assert "budget" in _stats_from(guarded, device, TOKEN)["stats"]


def test_one_address_holds_no_more_than_its_share(guarded: Served) -> None:
    """Strangers from one address beyond --max-per-source push out their own kind, not the
    devices of other addresses (the guarded edge allows 32 of its 64 slots per address)."""
    socks = [connect(guarded.address, source=ATTACKER) for _ in range(64)]
    try:
        for sock in socks:
            sock.sendall(b"\x00")  # a message begun, never finished
        events = stats(guarded, TOKEN)["events"]
        assert events.get("evicted", 0) >= 32
        assert "budget" in _stats_from(guarded, fresh_source(), TOKEN)["stats"]
    finally:
        for sock in socks:
            sock.close()
