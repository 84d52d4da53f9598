"""Live runtime costs on loopback: framework overhead, shaping accuracy, throughput.

1. Overhead per frame = end-to-end − device compute − edge compute − ideal transfer, unshaped:
   the ideal transfer is what bare blocking sockets take to move the same bytes to another
   process over loopback and hear a 64-byte answer (measured beside it), for boundaries of
   10 KB to 5 MB (a 1x1 convolution then a global average pool, cut between them: compute is
   small, the boundary is the size asked and the reply 64 bytes, like a model's output).
   Goal ≤ 1 ms at 1 MB.
2. Shaped uplink time against the ideal bytes / bandwidth + RTT/2, constant links of 2, 10 and
   50 Mbit/s, 100 KB to 2 MB. Goal: within 5%.
3. Throughput: 1, 4 and 16 devices at once on one server (AlexNet cut after pool5: the edge
   runs the three FC layers; each device resends a boundary it computed once, so the server is
   what is measured), without and with micro-batching (2 ms window); errors counted.

The edge server runs in its own process (as a real edge would), the devices in this one.

    python benchmarks/bench_runtime.py [--frames 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from coinfer import partition
from coinfer.assembly import load_model
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.live_env import run_live_env
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import ProcessServer
from coinfer.edge.store import ModelStore
from coinfer.latency.link import Link
from coinfer.policies.static import FixedCut

SIZES_KB = (10, 100, 1000, 5000)


def relay_store(kb: int) -> ModelStore:
    """The relay model's store, built again in the server's own process."""
    return ModelStore.of({"relay": _relay(kb)})


def alexnet_store() -> ModelStore:
    return ModelStore(["alexnet"])


def _relay(kb: int) -> tuple[Any, tuple[torch.Tensor, ...]]:
    """A 1x1 convolution over 16 channels and a global average pool; the input side chosen
    so the boundary between them is ``kb`` kilobytes of float32."""
    torch.manual_seed(0)  # the same weights in the device's process and the server's
    side = max(1, round((kb * 1000 / (4 * 16)) ** 0.5))
    net = nn.Sequential(nn.Conv2d(16, 16, 1), nn.AdaptiveAvgPool2d(1)).eval()
    x = (torch.randn(1, 16, side, side),)
    return partition(net, x), x


def _echo(port_out: Any, nbytes: int) -> None:
    """The floor: a plain blocking socket that takes ``nbytes`` and answers 64 bytes."""
    listener = socket.create_server(("127.0.0.1", 0))
    port_out.send(listener.getsockname()[1])
    conn, _ = listener.accept()
    buf = bytearray(nbytes)
    view = memoryview(buf)
    while True:
        got = 0
        while got < nbytes:
            n = conn.recv_into(view[got:])
            if not n:
                return
            got += n
        conn.sendall(b"r" * 64)


def loopback_floor_ms(nbytes: int, repeats: int) -> float:
    """Median time to move ``nbytes`` to another process over loopback and hear 64 bytes back
    with bare blocking sockets: the ideal transfer of an unshaped loopback link."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_echo, args=(send, nbytes), daemon=True)
    proc.start()
    port = receive.recv()
    data = b"x" * nbytes
    times = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(repeats + 3):
            start = time.perf_counter()
            sock.sendall(data)
            reply = b""
            while len(reply) < 64:
                reply += sock.recv(64 - len(reply))
            times.append(time.perf_counter() - start)
    proc.join(timeout=5)
    proc.kill()
    return 1e3 * statistics.median(times[3:])


def overhead(frames: int) -> list[dict[str, Any]]:
    rows = []
    for kb in SIZES_KB:
        part, x = _relay(kb)
        with ProcessServer(relay_store, (kb,)) as server:
            client = DeviceClient("relay", part, [0.0] * len(part.cuts), Endpoint(server.address))
            env = asyncio.run(run_live_env(client, FixedCut(1), [x] * (frames + 3)))
            records = env.records[3:]  # warm-up
        extra = 1e3 * statistics.median(r.total_s - r.device_s - r.edge_s for r in records)
        floor = loopback_floor_ms(records[0].bytes_sent, frames)
        rows.append(
            {
                "boundary_kb": part.cuts[1].boundary_bytes / 1000,
                "median_total_ms": 1e3 * statistics.median(r.total_s for r in records),
                "beyond_compute_ms": extra,
                "loopback_floor_ms": floor,
                "overhead_ms": extra - floor,
            }
        )
    return rows


def shaping(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for mbps in (2, 10, 50):
        for kb in (100, 500, 2000):
            link = Link.constant(mbps * 1e6, rtt_s=0.02)
            part, x = _relay(kb)
            nbytes = part.cuts[1].boundary_bytes
            ideal = link.upload_seconds(nbytes)  # bits / rate + RTT/2
            with ProcessServer(relay_store, (kb,)) as server:
                client = DeviceClient(
                    "relay", part, [0.0] * len(part.cuts), Endpoint(server.address), link
                )
                records = asyncio.run(run_live_env(client, FixedCut(1), [x] * repeats)).records
            measured = statistics.median(r.uplink_s for r in records)
            wire = records[0].bytes_sent  # the message: boundary + header + prefix
            rows.append(
                {
                    "link_mbps": mbps,
                    "boundary_kb": nbytes / 1000,
                    "ideal_ms": 1e3 * link.upload_seconds(wire),
                    "measured_ms": 1e3 * measured,
                    "ratio": measured / link.upload_seconds(wire),
                    "boundary_only_ideal_ms": 1e3 * ideal,
                }
            )
    return rows


def throughput(frames: int) -> list[dict[str, Any]]:
    """The server's throughput: each device sends the boundary it computed once, as fast as
    the server answers (its own front compute is not what is measured here)."""
    live = load_model("alexnet")
    cut = 15  # pool5: 37 KB up, the FC layers on the edge
    boundary = list(live.torch_path().split(cut)[0](*live.inputs))
    rows = []
    for window_ms in (0.0, 2.0):
        for devices in (1, 4, 16):
            options = ServerOptions(batch_window_s=window_ms / 1000)
            with ProcessServer(alexnet_store, (), options) as server:
                clients = [
                    DeviceClient(
                        "alexnet",
                        live.part,
                        [0.0] * len(live.part.cuts),
                        Endpoint(server.address),
                        options=ClientOptions(edge_timeout_s=30.0),
                    )
                    for _ in range(devices)
                ]

                async def one(client: DeviceClient) -> list[tuple[float, str | None]]:
                    out: list[tuple[float, str | None]] = []
                    for _ in range(frames):
                        t0 = time.perf_counter()
                        try:
                            await client.offload(cut, boundary)
                            out.append((time.perf_counter() - t0, None))
                        except Exception as exc:  # counted, not hidden
                            out.append((time.perf_counter() - t0, repr(exc)))
                    await client.close()
                    return out

                async def all_devices(clients: list[DeviceClient] = clients) -> list[Any]:
                    return await asyncio.gather(*(one(c) for c in clients))

                start = time.perf_counter()
                results = asyncio.run(all_devices())
                elapsed = time.perf_counter() - start
            done = [r for rs in results for r in rs]
            rows.append(
                {
                    "devices": devices,
                    "batch_window_ms": window_ms,
                    "requests_per_s": len(done) / elapsed,
                    "median_latency_ms": 1e3 * statistics.median(t for t, _ in done),
                    "errors": sum(e is not None for _, e in done),
                }
            )
    return rows


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {
        "overhead": overhead(args.frames),
        "shaping": shaping(max(3, args.frames // 6)),
        "throughput": throughput(max(4, args.frames // 3)),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    console = Console()
    console.print(
        _table("framework overhead per frame, unshaped loopback (median)", results["overhead"])
    )
    console.print(_table("shaped uplink vs ideal (median)", results["shaping"]))
    console.print(_table("throughput, AlexNet cut after pool5", results["throughput"]))


if __name__ == "__main__":
    main()
