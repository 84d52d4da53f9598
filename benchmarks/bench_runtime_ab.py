"""The runtime's per-frame overhead against another checkout's, measured side by side.

Timings here move ±20% between runs, so "before" and "after" are compared in one sitting, block
by block: two device processes — one importing this checkout, one another (say the commit
before a change: ``git worktree add /tmp/before <rev>``) — each with its own edge server in its
own process, take turns running ``--block`` frames back to back (as bench_runtime.py does; the
order alternates), on the relay model of ``bench_runtime.py``. Printed per boundary size: each
side's median time beyond compute, the bare-socket floor, each side's overhead beyond it
(bench_runtime's figure), and the median of the paired block differences with a bootstrap 95%
interval. Each process pair has a luck of its own (where its memory and its threads land): the
same checkout against itself differs by up to ±0.1 ms at 10 KB from one pair to the next, far
beyond one pair's interval. ``--rounds N`` starts N fresh pairs (which side starts first drawn at
random) and prints the median of their paired differences and their spread beside the one pair's.

    python benchmarks/bench_runtime_ab.py --other /tmp/before [--kb 10 1000] [--blocks 100]
    python benchmarks/bench_runtime_ab.py --other /tmp/before --kb 10 --rounds 10 --blocks 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# one device: its own edge server (that checkout's ProcessServer), one frame per line on stdin
WORKER = r"""
import asyncio, sys
root, kb = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, root + "/benchmarks")
import torch
from bench_runtime import _relay, relay_store
from coinfer.policies.types import Action
try:  # this layout (wire/edge/device apart)
    from coinfer.device.client import DeviceClient
    from coinfer.device.endpoint import Endpoint
    from coinfer.edge.process import ProcessServer
except ImportError:  # a checkout from before it (coinfer.runtime)
    from coinfer.runtime.client import DeviceClient
    from coinfer.runtime.live import ProcessServer
    Endpoint = lambda address: address

def main():
    torch.set_num_threads(2)
    part, x = _relay(kb)
    with ProcessServer(relay_store, (kb,)) as server:
        client = DeviceClient("relay", part, [0.0] * len(part.cuts), Endpoint(server.address))

        async def blocks():
            i = 0
            while (line := sys.stdin.readline().split()) and line[0] == "go":
                beyond = []
                for _ in range(int(line[1])):  # back to back, as bench_runtime.py runs them
                    record = await client.frame(i, x, Action(1))
                    i += 1
                    beyond.append(record.total_s - record.device_s - record.edge_s)
                beyond.sort()
                print(beyond[len(beyond) // 2], record.bytes_sent, flush=True)
            await client.close()

        asyncio.run(blocks())

if __name__ == "__main__":
    main()
"""


def _device(root: Path, kb: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(root), str(kb)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def compare(
    other: Path, kb: int, blocks: int, block: int, warmup: int = 3, this_first: bool = True
) -> dict[str, Any]:
    roots = [("this", HERE.parent), ("other", other)]
    sides = {name: _device(root, kb) for name, root in (roots if this_first else roots[::-1])}
    beyond: dict[str, list[float]] = {name: [] for name in sides}
    sent = 0
    try:
        for i in range(blocks + warmup):
            order = list(sides.items()) if i % 2 else list(reversed(sides.items()))
            for name, proc in order:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"go {block}\n")
                proc.stdin.flush()
                seconds, nbytes = proc.stdout.readline().split()
                if i >= warmup:
                    beyond[name].append(1e3 * float(seconds))
                sent = int(nbytes)
    finally:
        for proc in sides.values():
            if proc.stdin is not None:
                proc.stdin.write("stop\n")
                proc.stdin.close()
            proc.wait(timeout=60)
    sys.path.insert(0, str(HERE))
    from bench_runtime import loopback_floor_ms

    floor = loopback_floor_ms(sent, 300)
    diffs = [a - b for a, b in zip(beyond["this"], beyond["other"], strict=True)]
    rng = random.Random(0)
    boot = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(400))
    this, that = (statistics.median(beyond[k]) for k in ("this", "other"))
    return {
        "boundary_kb": kb,
        "blocks": blocks,
        "block": block,
        "this_beyond_ms": this,
        "other_beyond_ms": that,
        "floor_ms": floor,
        "this_overhead_ms": this - floor,
        "other_overhead_ms": that - floor,
        "paired_diff_ms": statistics.median(diffs),
        "paired_diff_95": [boot[10], boot[389]],
    }


def repeated(other: Path, kb: int, blocks: int, block: int, rounds: int) -> dict[str, Any]:
    """The first pair's row, and with ``rounds`` > 1 the paired differences of every fresh pair."""
    rng = random.Random()
    runs = []
    for i in range(rounds):
        print(f"{kb} KB: pair {i + 1} of {rounds}", file=sys.stderr, flush=True)
        runs.append(compare(other, kb, blocks, block, this_first=rng.random() < 0.5))
    row = runs[0]
    if rounds > 1:
        diffs = [run["paired_diff_ms"] for run in runs]
        row["rounds"] = rounds
        row["round_diffs_ms"] = diffs
        row["round_median_ms"] = statistics.median(diffs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="another checkout's root")
    parser.add_argument("--kb", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--block", type=int, default=20, help="frames back to back per turn")
    parser.add_argument(
        "--rounds", type=int, default=1, help="fresh process pairs (the pairs' own spread)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1")
    if not (args.other / "src" / "coinfer").is_dir():
        parser.error(f"{args.other} is not a coinfer checkout (no src/coinfer)")
    rows = [repeated(args.other, kb, args.blocks, args.block, args.rounds) for kb in args.kb]
    if args.json:
        print(json.dumps({"other": str(args.other), "rows": rows}, indent=2))
        return
    for r in rows:
        low, high = r["paired_diff_95"]
        print(
            f"{r['boundary_kb']:>5} KB: overhead beyond the {r['floor_ms']:.3f} ms floor: "
            f"this {r['this_overhead_ms']:.3f} ms, other {r['other_overhead_ms']:.3f} ms; "
            f"paired this - other {r['paired_diff_ms']:+.3f} ms "
            f"(95% {low:+.3f} .. {high:+.3f}), {r['blocks']} blocks of {r['block']} "
            f"frames each"
        )
        if "rounds" in r:
            diffs = r["round_diffs_ms"]
            print(
                f"{'':>5}     {r['rounds']} fresh pairs: median paired difference "
                f"{r['round_median_ms']:+.3f} ms, from {min(diffs):+.3f} to {max(diffs):+.3f}"
            )


if __name__ == "__main__":
    main()
