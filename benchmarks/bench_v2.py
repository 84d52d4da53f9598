"""The Open Inference Protocol v2 (REST, binary tensors) against coinfer's native wire, side
by side on one edge process: the same boundary (10 KB and 1 MB of float32, the relay model of
``bench_runtime.py``: a 1x1 convolution, the cut, a global average pool), the same edge, the
two protocols' frames in alternating blocks; per frame the time beyond the device's and the
edge's compute (framing, parsing, checks, copies, loopback). Prints medians and v2 − native.

    python benchmarks/bench_v2.py [--blocks 10] [--frames 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
from typing import Any

from rich.console import Console
from rich.table import Table

from bench_runtime import _relay, relay_store
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import ProcessServer
from coinfer.policies.types import Action


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compare(kb: int, blocks: int, frames: int) -> dict[str, Any]:
    part, x = _relay(kb)
    port = _free_port()
    with ProcessServer(relay_store, (kb,), ServerOptions(http_port=port)) as server:
        clients = {
            "native": Endpoint(server.address),
            "v2": Endpoint(("127.0.0.1", port), protocol="v2"),
        }
        devices = {
            name: DeviceClient(
                "relay", part, [0.0] * part.num_cuts, e, options=ClientOptions(emulate=False)
            )
            for name, e in clients.items()
        }

        async def run() -> dict[str, list[float]]:
            beyond: dict[str, list[float]] = {name: [] for name in devices}
            try:
                for block in range(blocks + 1):  # the first block warms both up
                    for name, client in devices.items():
                        for i in range(frames):
                            r = await client.frame(i, list(x), Action(1))
                            if r.fallback:
                                raise RuntimeError(f"{name}: {r.error}")
                            if block:
                                beyond[name].append(r.total_s - r.device_s - r.edge_s)
            finally:
                for client in devices.values():
                    await client.close()
            return beyond

        beyond = asyncio.run(run())
    native = 1e3 * statistics.median(beyond["native"])
    v2 = 1e3 * statistics.median(beyond["v2"])
    return {
        "boundary_kb": part.cuts[1].boundary_bytes / 1000,
        "native_ms": native,
        "v2_ms": v2,
        "v2_minus_native_ms": v2 - native,
        "ratio": v2 / native,
        "frames_each": blocks * frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [compare(kb, args.blocks, args.frames) for kb in (10, 1000)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="beyond compute per frame, median (ms)")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)


if __name__ == "__main__":
    main()
