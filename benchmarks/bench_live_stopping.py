"""Optimal stopping live: every stage-wise policy on the same fading channel, over a real edge.

For each model, one edge server (its own process) and one device that runs the chain layer by
layer (padded to its emulated class) over a Rayleigh-fading uplink (10 dB, 1% outage, the shaper
playing R(h) block by block): the optimal rule, OSLA, myopic, the best fixed split, edge-only
and device-only, each for ``--tasks`` tasks on the same channel draws (task t meets the same
gains whatever the policy). Printed per policy: the mean measured cost (energy + w·time) with
its 95% interval; the rule's analytic expected cost on the per-layer times measured once per
model before the policies run, and on the times measured during its own run; the gap to the
cost model on the very gains the tasks met (measurement error without the channel's sampling
noise); and whether the optimal rule measured no worse than each baseline.

    python benchmarks/bench_live_stopping.py [--tasks 300] [--models mlp:rpi3,alexnet:edge-pc/8]
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table

from coinfer.assembly import device_setup, load_model
from coinfer.device.endpoint import Endpoint
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import ProcessServer, zoo_store
from coinfer.latency.host import configure_host
from coinfer.systems.stopping.live import run_stages

POLICIES = ("stopping", "osla", "myopic", "fixed-split", "edge-only", "device-only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument(
        "--models", default="mlp:rpi3,alexnet:edge-pc/8", help="model:device class, comma-separated"
    )
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=int, default=10, help="calibration passes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_host()
    console = Console(stderr=True)
    rows = []
    for spec in args.models.split(","):
        model, device = spec.split(":")
        # a deep fade makes an upload take tens of seconds: the server's read deadline must not
        # cut it short (it would turn the task into a fallback the cost model does not know)
        with ProcessServer(zoo_store, (model,), ServerOptions(read_timeout_s=300.0)) as server:
            setup = device_setup(load_model(model), device, "host")
            calibration = None  # measured once per model: every policy on the same times
            for name in args.policies.split(","):
                t0 = time.monotonic()
                result = run_stages(
                    setup,
                    name,
                    args.tasks,
                    Endpoint(server.address),
                    seed=args.seed,
                    calibration_repeats=args.calibration,
                    calibration=calibration,
                )
                calibration = result.calibration
                doc = result.summary
                doc["wall_s"] = time.monotonic() - t0
                rows.append(doc)
                console.print(
                    f"{model} {name}: {doc['mean_cost']:.5g} ± {doc['ci95']:.2g} "
                    f"(analytic {doc['analytic_cost']:.5g}) in {doc['wall_s']:.0f} s"
                )
    if args.json:
        print(json.dumps({"rows": rows}, indent=2, allow_nan=False))
        return
    table = Table(title=f"live optimal stopping, Rayleigh 10 dB, w = 1, {args.tasks} tasks")
    for col in (
        "model",
        "device",
        "policy",
        "mean cost",
        "± 95%",
        "analytic (calibration)",
        "gap",
        "analytic (as run)",
        "gap",
        "model on the draws: gap",
        "optimal ≤ this",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for row in rows:
        best = next(r for r in rows if r["model"] == row["model"] and r["policy"] == "stopping")
        table.add_row(
            row["model"],
            row["device"],
            row["policy"],
            f"{row['mean_cost']:.5g}",
            f"{row['ci95']:.2g}",
            f"{row['analytic_cost']:.5g}",
            f"{100 * row['measured_vs_analytic']:+.1f}%",
            f"{row['analytic_cost_as_run']:.5g}",
            f"{100 * row['measured_vs_analytic_as_run']:+.1f}%",
            f"{100 * row['measured_vs_model_on_draws']:+.1f}%",
            "yes" if best["mean_cost"] <= row["mean_cost"] else "NO",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
