"""Good devices and attackers on one edge server: what the attack costs the good devices.

One edge server (its own process, AlexNet, a token, a memory budget) serves 8 well-behaved
devices (their own process; each runs frames back to back at a fixed cut and checks every
answer against the whole model) for ``--seconds``, first alone, then while 8 attackers (a third
process) mix every attack of docs/security.md: decompression and dequantisation bombs,
prefixes announcing 256 MiB, requests without the token, a pipeliner that never reads its
replies, CONTROL floods with impossible values, idle-connection hoarders, tricklers, unknown
kinds followed by junk, garbage, and (round two) chained slow PINGs, reconnecting stallers,
wrong-token floods and poisoning SYNCs. Half the attackers hold the token (a compromised
device), half do not; each attacker connects from its own loopback address (127.0.0.10 on),
the good devices from 127.0.0.1. Printed: the good devices' p50/p99 latency in both runs,
correct answers, wrong answers they accepted (must be 0), fallbacks, and the server's peak RSS
growth against its budget, sampled from /proc, and its RSS after the attack.

``--only federation`` measures the federation instead: two honest ``coinfer run -p
fedlinucb-d`` devices in turn in a clean group, then in a group a hostile member joined first
(40 real INFERs, then one SYNC claiming each took 60 s at every cut): each device's mean
latency against the clean group's, and the verdict against the 1.5x bound.

    python benchmarks/bench_hostile.py [--seconds 60] [--budget-mb 128] [--json]
    python benchmarks/bench_hostile.py --only federation [--frames 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import itertools
import json
import multiprocessing
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from coinfer.assembly import load_model
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.live_env import run_live_env
from coinfer.device.requests import edge_stats
from coinfer.dtypes import to_arrays
from coinfer.edge.budget import process_memory, reset_peak_memory
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import ProcessServer, zoo_store
from coinfer.policies.bandits import scaled_features
from coinfer.policies.static import FixedCut
from coinfer.wire.protocol import PREFIX, Kind, pack, unpack_header
from coinfer.wire.sync import EXPERIENCE, MAX_UNITS, ONLINE, Sums
from coinfer.wire.tensors import encode_tensors

TOKEN = "bench-token-0f-20-bytes"
MIB = 1024 * 1024
GOOD_DEVICES = 8
ATTACKERS = 8
CUTS = (15, 8, 22, 0)  # after pool5, after pool2, before the last FC, the raw input


# -- the good devices (a process of their own)
def good_devices(address: tuple[str, int], seconds: float, out: Any) -> None:
    torch.set_num_threads(1)
    live = load_model("alexnet")
    with torch.no_grad():
        want = live.torch_path().graph_module(*live.inputs)

    async def device(i: int) -> dict[str, Any]:
        client = DeviceClient(
            "alexnet",
            live.part,
            [0.0] * len(live.part.cuts),
            Endpoint(address, TOKEN),
            options=ClientOptions(edge_timeout_s=2.0),
        )
        policy, frames = FixedCut(CUTS[i % len(CUTS)]), [live.inputs] * 100_000
        env = await run_live_env(
            client, policy, frames, started=time.monotonic(), deadline_s=seconds
        )
        records = env.records
        correct = wrong = 0
        for record, output in zip(records, client.outputs, strict=True):
            if record.offloaded:
                exact = torch.allclose(output[0], want, rtol=1e-4, atol=1e-5)
                correct, wrong = correct + exact, wrong + (not exact)
        return {
            "latencies": [r.total_s for r in records if r.offloaded],
            "frames": len(records),
            "fallbacks": sum(r.fallback for r in records),
            "correct": correct,
            "wrong": wrong,
            "errors": sorted({r.error.split(":")[0] for r in records if r.error}),
        }

    async def everyone() -> list[dict[str, Any]]:
        return await asyncio.gather(*(device(i) for i in range(GOOD_DEVICES)))

    out.send(asyncio.run(everyone()))


# -- the attackers (a process of their own, one thread each)
@functools.cache
def _fingerprint() -> bytes:
    return load_model("alexnet").part.fingerprint


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


def _infer(
    metas: Any,
    payload: bytes = b"",
    token: str | None = TOKEN,
    cut: int = 15,
    payload_len: int | None = None,
) -> bytes:
    header: dict[str, Any] = {
        "id": 1,
        "model": "alexnet",
        "cut": cut,
        "fp": _fingerprint(),
        "tensors": metas,
    }
    if token is not None:
        header["token"] = token
    return pack(Kind.INFER, header, payload, payload_len=payload_len)


class Attacks:
    def __init__(self, address: tuple[str, int]) -> None:
        import lz4.frame
        import zstandard

        self.address = address
        self.source = "127.0.0.10"  # each attacker thread its own: see attackers()
        zeros = bytes(64 * MIB)
        self.zstd_bomb = zstandard.ZstdCompressor().compress(zeros)
        self.lz4_bomb = lz4.frame.compress(bytes(8 * MIB))
        self.int8 = zstandard.ZstdCompressor().compress(bytes(10**7))
        live = load_model("alexnet")
        with torch.no_grad():
            boundary = to_arrays(live.torch_path().split(22)[0](*live.inputs))
        metas, payload = encode_tensors(boundary)
        self.small = _infer(metas, bytes(payload), cut=22)
        raw_metas, raw = encode_tensors(to_arrays(list(live.inputs)))
        self.raw = (raw_metas, bytes(raw))

    def _sock(self, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket()
        sock.bind((self.source, 0))
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5)
        sock.connect(self.address)
        return sock

    def _send_all(self, messages: list[bytes], read: bool = True) -> None:
        with self._sock() as sock:
            for wire in messages:
                sock.sendall(wire)
                if read:
                    sock.recv(65536)

    def bombs(self, token: str | None) -> None:
        self._send_all(
            [
                _infer(_boundary(codec="zstd", bytes=len(self.zstd_bomb)), self.zstd_bomb, token),
                _infer(_boundary(codec="lz4", bytes=len(self.lz4_bomb)), self.lz4_bomb, token),
                _infer(
                    _boundary(
                        shape=[1, 10**7],
                        quant="int8",
                        scale=1.0,
                        zero=0.0,
                        codec="zstd",
                        raw_bytes=10**7,
                        bytes=len(self.int8),
                    ),
                    self.int8,
                    token,
                ),
            ]
        )

    def announce(self, token: str | None) -> None:
        socks = [self._sock() for _ in range(20)]
        for sock in socks:
            sock.sendall(PREFIX.pack(b"CF", 1, int(Kind.INFER), 100, 256 * MIB))
        time.sleep(1.0)
        for sock in socks:
            sock.close()

    def stranger(self, token: str | None) -> None:
        self._send_all([_infer(_boundary(), token=None, payload_len=256 * MIB)])

    def never_reads(self, token: str | None) -> None:
        with self._sock(rcvbuf=4096) as sock:
            control = pack(Kind.CONTROL, {"id": 2, "slowdown": 1.0, "token": token})
            deadline = time.monotonic() + 3.0
            try:
                while time.monotonic() < deadline:
                    sock.sendall(self.small + control)
            except OSError:
                pass

    def control(self, token: str | None) -> None:
        values = [float("inf"), 1e308, "inf", True, -1.0, 0.5]
        self._send_all(
            [pack(Kind.CONTROL, {"id": 3, "slowdown": v, "token": token}) for v in values]
        )

    def hoard(self, token: str | None) -> None:
        socks = [self._sock() for _ in range(60)]
        time.sleep(2.0)
        for sock in socks:
            sock.close()

    def trickle(self, token: str | None) -> None:
        metas, raw = self.raw  # cut 0: 602 KB the server reserves while it trickles in
        wire = _infer(metas, raw, token, cut=0)
        socks = [self._sock() for _ in range(40)]
        for step in range(20):
            for sock in socks:
                sock.sendall(wire[step * 64 : (step + 1) * 64])
            time.sleep(0.1)
        for sock in socks:
            sock.close()

    def unknown(self, token: str | None) -> None:
        with self._sock() as sock:
            sock.sendall(PREFIX.pack(b"CF", 1, 99, 0, 0))
            junk = bytes(MIB)
            for _ in range(64):
                sock.sendall(junk)

    def garbage(self, token: str | None) -> None:
        with self._sock() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: edge\r\n\r\n" * 100)

    def slow_pings(self, token: str | None) -> None:
        """Finding 1: PINGs a byte at a time, the next begun as soon as one is answered."""
        ping = pack(Kind.PING, {"id": 4})
        socks = [self._sock() for _ in range(40)]
        for _ in range(2):
            for byte in range(len(ping)):
                for sock in socks:
                    sock.sendall(ping[byte : byte + 1])
                time.sleep(0.15)
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.recv(256)
        for sock in socks:
            sock.close()

    def stallers(self, token: str | None) -> None:
        """Finding 2: one byte, then nothing, reconnecting as soon as the server lets go."""
        for _ in range(3):
            socks = [self._sock() for _ in range(40)]
            for sock in socks:
                sock.sendall(b"C")
            time.sleep(1.0)
            for sock in socks:
                sock.close()

    def wrong_tokens(self, token: str | None) -> None:
        """Finding 3: logins with wrong tokens as fast as the server answers them."""
        stats = pack(Kind.STATS, {"id": 5, "token": "wrong-token-of-20-bytes"})
        for _ in range(30):
            with contextlib.suppress(OSError), self._sock() as sock:
                sock.sendall(stats)
                sock.recv(4096)

    def poison(self, token: str | None) -> None:
        """Findings 5 and 6: SYNCs with impossible, unbacked and wrong-dimension statistics."""
        lie = Sums(1e12 * np.eye(8), np.full(8, 50e12), 10**7)
        backed = Sums(1e6 * np.ones((8, 8)), np.full(8, 6e8), 10**6)
        for i, (dim, sums) in enumerate(((8, lie), (8, backed), (7, Sums.zero(7)))):
            header = {"id": 6, "group": f"bench-{i}", "dim": dim, "member": 5, "seq": 1}
            header |= sums.wire(ONLINE) | Sums.zero(dim).wire(EXPERIENCE)
            if token is not None:
                header["token"] = token
            self._send_all([pack(Kind.SYNC, header)])

    ALL = (
        "bombs",
        "announce",
        "stranger",
        "never_reads",
        "control",
        "hoard",
        "trickle",
        "unknown",
        "garbage",
        "slow_pings",
        "stallers",
        "wrong_tokens",
        "poison",
    )


def attackers(address: tuple[str, int], seconds: float, out: Any) -> None:
    torch.set_num_threads(1)
    attacks = Attacks(address)
    counts: dict[str, int] = dict.fromkeys(Attacks.ALL, 0)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def attacker(i: int) -> None:
        token = TOKEN if i < ATTACKERS // 2 else None  # half hold the token
        mine = copy.copy(attacks)
        mine.source = f"127.0.0.{10 + i}"
        for name in itertools.cycle(Attacks.ALL[i % len(Attacks.ALL) :] + Attacks.ALL):
            if time.monotonic() >= deadline:
                return
            with contextlib.suppress(OSError):  # refused, reset, timed out: the server defends
                getattr(mine, name)(token)
            with lock:
                counts[name] += 1

    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.send(counts)


# -- one phase: good devices, with or without attackers, and the server's memory meanwhile
def phase(server: ProcessServer, seconds: float, attack: bool) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    pid = server.process.pid
    assert pid is not None
    reset_peak_memory(pid)
    before = process_memory(pid)["rss_bytes"]
    good_in, good_out = ctx.Pipe(duplex=False)
    bad_in, bad_out = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=good_devices, args=(server.address, seconds, good_out))]
    if attack:
        procs.append(ctx.Process(target=attackers, args=(server.address, seconds, bad_out)))
    for proc in procs:
        proc.start()
    peak = 0
    while not good_in.poll(0.1):
        peak = max(peak, process_memory(pid).get("rss_bytes", 0))
    devices = good_in.recv()
    counts = bad_in.recv() if attack else {}
    for proc in procs:
        proc.join(timeout=60)
    peak = max(peak, process_memory(pid).get("peak_rss_bytes", 0))
    time.sleep(3.0)  # the burst is over: what the server gave back
    after = process_memory(pid)["rss_bytes"]
    latencies = sorted(t for d in devices for t in d["latencies"])
    stats = _stats(server)
    return {
        "phase": "attacked" if attack else "baseline",
        "frames": sum(d["frames"] for d in devices),
        "offloaded": len(latencies),
        "fallbacks": sum(d["fallbacks"] for d in devices),
        "correct": sum(d["correct"] for d in devices),
        "wrong_accepted": sum(d["wrong"] for d in devices),
        "p50_ms": 1e3 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1e3 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "peak_rss_growth_mb": (peak - before) / MIB,
        "rss_after_mb": after / MIB,
        "rss_before_mb": before / MIB,
        "server_alive": server.process.is_alive(),
        "device_errors": sorted({e for d in devices for e in d["errors"]}),
        "attacks_run": counts,
        "server_errors": stats.get("errors", {}),
        "server_events": stats.get("events", {}),
        "server_budget": stats.get("budget", {}),
    }


def _stats(server: ProcessServer) -> dict[str, Any]:
    """The server's STATS, once the attackers' last connections have timed out."""
    for _ in range(20):
        try:
            return asyncio.run(edge_stats(Endpoint(server.address, TOKEN)))
        except Exception:  # BUSY while the attack's connections drain
            time.sleep(0.5)
    return {}


# -- the federation: a hostile member against honest federated devices
def _ask(address: tuple[str, int], wire: bytes, source: str) -> tuple[Kind, dict[str, Any]]:
    with socket.create_connection(address, timeout=30, source_address=(source, 0)) as sock:
        sock.sendall(wire)
        reader = sock.makefile("rb")
        _, _, kind, header_len, payload_len = PREFIX.unpack(reader.read(PREFIX.size))
        header = unpack_header(reader.read(header_len))
        reader.read(payload_len)
    return Kind(kind), header


def poison_group(address: tuple[str, int], group: str, frames: int = 40) -> int:
    """Finding 5 within the bounds: ``frames`` real INFERs from 127.0.0.2, then one SYNC
    claiming each took 60 s (the range's bound) at every offloading cut; the records taken."""
    part = load_model("alexnet").part
    rows = scaled_features(part.cuts)[:-1]
    rows = np.hstack([rows, np.zeros((len(rows), 1))])  # the link feature: dim 8
    metas, raw = encode_tensors(to_arrays([torch.zeros(1, 256, 6, 6)]))
    for _ in range(frames):
        _ask(address, _infer(metas, bytes(raw)), "127.0.0.2")
    claimed = rows[np.arange(frames) % len(rows)]
    lies = Sums(claimed.T @ claimed, claimed.T @ np.full(frames, MAX_UNITS), frames)
    header = {"id": 1, "group": group, "dim": 8, "member": 5, "seq": 1}
    header |= lies.wire(ONLINE) | Sums.zero(8).wire(EXPERIENCE)
    kind, reply = _ask(address, pack(Kind.SYNC, header), "127.0.0.2")
    return int(reply.get("count", 0)) if kind is Kind.RESULT else 0


def federated_run(address: tuple[str, int], group: str, frames: int) -> dict[str, Any]:
    """One honest ``coinfer run -p fedlinucb-d`` device of ``group``, its --json."""
    coinfer = str(Path(sys.executable).with_name("coinfer"))  # the venv's, beside its python
    command = [coinfer, "run", "--edge", f"{address[0]}:{address[1]}"]
    command += ["-m", "alexnet", "-n", str(frames), "--device", "edge-pc/8", "--json"]
    command += ["--bandwidth", "20mbit", "--rtt", "5ms", "-p", "fedlinucb-d", "--group", group]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def federation(frames: int, as_json: bool) -> None:
    with ProcessServer(zoo_store, ("alexnet",), ServerOptions(federation=True)) as server:
        taken = poison_group(server.address, "poisoned")
        rows = []
        for group in ("clean", "poisoned"):
            for device in (1, 2):
                print(f"{group} group, device {device}: {frames} frames", file=sys.stderr)
                out = federated_run(server.address, group, frames)
                last = str(len(load_model("alexnet").part.cuts) - 1)
                rows.append(
                    {
                        "group": group,
                        "device": device,
                        "mean_s": out["mean_latency_s"],
                        "on_device": out["cuts"].get(last, 0),
                        "cuts": out["cuts"],
                    }
                )
    clean = [r["mean_s"] for r in rows if r["group"] == "clean"]
    base = statistics.mean(clean)
    for row in rows:
        row["vs_clean"] = row["mean_s"] / base
    worst = max(r["vs_clean"] for r in rows if r["group"] == "poisoned")
    noise = max(clean) / min(clean) - 1  # the clean devices' spread: run-to-run noise
    result = {"frames": frames, "lies_taken": taken, "rows": rows, "worst_vs_clean": worst}
    result["verdict"] = (
        f"worst poisoned device {worst:.2f}x the clean group's mean latency "
        f"({'within' if worst <= 1.5 else 'beyond'} the 1.5x bound, margin "
        f"{1.5 - worst:+.2f}x; clean devices differ by {noise:.0%}, "
        f"{'less' if noise < abs(1.5 - worst) else 'more'} than the margin)"
    )
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"fedlinucb-d, {frames} frames a device; {taken} lies taken")
    for col in ("group", "device", "mean_s", "vs_clean", "on_device", "cuts"):
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(
            row["group"],
            str(row["device"]),
            f"{row['mean_s']:.3f}",
            f"{row['vs_clean']:.2f}x",
            str(row["on_device"]),
            json.dumps(row["cuts"]),
        )
    console = Console(width=200)
    console.print(table)
    console.print(result["verdict"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--budget-mb", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=("federation",), help="measure only the federation")
    parser.add_argument("--frames", type=int, default=20, help="--only federation: per device")
    args = parser.parse_args()
    if args.only == "federation":
        federation(args.frames, args.json)
        return
    options = {
        "token": TOKEN,
        "max_buffer_bytes": args.budget_mb * MIB,
        "read_timeout_s": 2.0,
        "write_timeout_s": 2.0,
        "idle_timeout_s": 5.0,
        "max_connections": 256,
        "max_per_source": 64,
        "federation": True,
    }
    with ProcessServer(zoo_store, ("alexnet",), ServerOptions(**options)) as server:
        rows = [phase(server, args.seconds, False), phase(server, args.seconds, True)]
    result = {
        "budget_mb": args.budget_mb,
        "seconds": args.seconds,
        "options": options,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    console = Console(width=200)
    table = Table(
        title=f"{GOOD_DEVICES} good devices, {args.seconds:g} s; server budget {args.budget_mb} MiB"
    )
    columns = [
        "phase",
        "frames",
        "offloaded",
        "fallbacks",
        "correct",
        "wrong_accepted",
        "p50_ms",
        "p99_ms",
        "peak_rss_growth_mb",
        "rss_before_mb",
        "rss_after_mb",
        "server_alive",
    ]
    for col in columns:
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(
            *(f"{row[c]:.1f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    console.print(table)
    attacked = rows[1]
    console.print(f"attacks run: {attacked['attacks_run']}")
    console.print(f"server errors answered: {attacked['server_errors']}")
    console.print(f"server events: {attacked['server_events']}")
    console.print(f"server budget: {attacked['server_budget']}")
    console.print(
        f"good devices' errors (frames finished on the device): {attacked['device_errors']}"
    )
    base, hit = rows[0]["p99_ms"], attacked["p99_ms"]
    if base and hit:
        console.print(
            f"p99 under attack / baseline: {hit / base:.2f}x; peak RSS growth "
            f"{attacked['peak_rss_growth_mb']:.1f} MiB of a {args.budget_mb} MiB "
            f"budget"
        )


if __name__ == "__main__":
    main()
