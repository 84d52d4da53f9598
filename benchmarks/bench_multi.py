"""Fleet simulation speed: simulated device-frames per second at M = 100 (and smaller fleets).

Each fleet of the cans experiment (HSDPA links, processor-sharing edge, 4 device types at
M = 100) runs ``--frames`` frames per device under each policy; the median over ``--repeats``
runs of device-frames / wall-clock second is printed, with the ratio to a fixed cut (the cost
of the event loop and the per-frame truth alone). Fleet building and experience are not timed.

    python benchmarks/bench_multi.py [--frames 200] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coinfer.sim.fleet_policies import make_fleet_policies
from coinfer.systems.cans import worlds as cans

FLEETS = ((10, 2), (100, 4))
POLICIES = ("edge-only", "noncoop", "fedlinucb-d", "fedlinucb-dw")


def device_frames_per_second(
    devices: int, types: int, policy: str, frames: int, repeats: int, folder: Path
) -> float:
    experiences = cans.load_or_make_experience(devices, types, 0, folder / f"M{devices}")
    rates = []
    for _ in range(repeats):
        sim = cans.build_sim(devices, types, seed=0)
        policies, _ = make_fleet_policies(policy, sim, experiences)
        start = time.perf_counter()
        sim.run(policies, frames)
        rates.append(devices * frames / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for devices, types in FLEETS:
            base = None
            for policy in POLICIES:
                rate = device_frames_per_second(
                    devices, types, policy, args.frames, args.repeats, Path(tmp)
                )
                base = base or rate
                rows.append(
                    {
                        "devices": devices,
                        "policy": policy,
                        "device_frames_per_s": rate,
                        "vs_fixed_cut": rate / base,
                    }
                )
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
        return
    table = Table(
        title=f"fleet simulation, {args.frames} frames per device, median of {args.repeats}"
    )
    for col in ("devices", "policy", "device-frames/s", "vs fixed cut"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["devices"]),
            r["policy"],
            f"{r['device_frames_per_s']:,.0f}",
            f"{r['vs_fixed_cut']:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
