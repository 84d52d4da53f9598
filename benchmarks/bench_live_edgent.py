"""Edgent live against Edgent simulated: the same policies, trace, model, classes and frames.

One edge server (its own process) serves the trained BranchyNet AlexNet; the device (an
emulated Raspberry Pi 3) runs the held-out digits over a shaped link replaying a 3G trace, at a
latency requirement, with each registered Edgent policy through the one loop (``LiveEnv``). The
simulator runs the same policies on the same frames, trace and classes (``SimEnv``, noise-free,
the same 20 ms RTT). Printed per policy and world: accuracy, deadline hit rate, mean latency,
the exits taken, and the live − simulated gap in points.

    python benchmarks/bench_live_edgent.py [--frames 300] [--trace norway_bus_1] [--scale 0.5]
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from coinfer.assembly import device_setup, load_model
from coinfer.data import trace_path
from coinfer.device.endpoint import Endpoint
from coinfer.device.session import run_frames
from coinfer.edge.process import ProcessServer, zoo_store
from coinfer.latency.host import configure_host
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.systems.edgent.live import link_history_bps
from coinfer.systems.edgent.simulate import simulate_edgent

POLICIES = ("edgent-dynamic", "edgent", "edgent-device-only", "edge-only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--trace", default="norway_bus_1")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--req-ms", type=float, default=100.0)
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_host()
    req, rtt = args.req_ms / 1e3, args.rtt_ms / 1e3
    names = args.policies.split(",")
    simulated = {
        r["policy"]: r
        for r in simulate_edgent(
            "branchy_alexnet", names, args.frames, args.trace, args.scale, req, rtt_s=rtt
        )
    }
    live = {}
    with ProcessServer(zoo_store, ("branchy_alexnet",)) as server:
        setup = device_setup(load_model("branchy_alexnet"), "rpi3", "edge-pc")
        link = Link(TraceBandwidth.from_file(trace_path(args.trace), scale=args.scale), rtt)
        history = link_history_bps(args.trace, args.scale, link)
        for name in names:
            result = run_frames(
                setup,
                name,
                args.frames,
                link,
                Endpoint(server.address),
                latency_req_s=req,
                fields={"link_history_bps": history},
            ).summary
            live[name] = result
            Console(stderr=True).print(
                f"{name}: live {result['accuracy']} / {result['deadline_hit_rate']}"
            )
    rows = []
    for name in names:
        sim, real = simulated[name], live[name]
        rows.append(
            {
                "policy": name,
                "live_accuracy": real["accuracy"],
                "sim_accuracy": sim["accuracy"],
                "live_hit_rate": real["deadline_hit_rate"],
                "sim_hit_rate": sim["deadline_hit_rate"],
                "live_mean_latency_s": real["mean_latency_s"],
                "sim_mean_latency_s": sim["mean_latency_s"],
                "live_exits": real.get("exits"),
                "sim_exits": sim["exits"],
                "fallbacks": real["fallbacks"],
            }
        )
    if args.json:
        print(json.dumps({"config": vars(args), "rows": rows}, indent=2, allow_nan=False))
        return
    table = Table(
        title=f"Edgent live vs simulated: {args.trace} x{args.scale:g}, "
        f"{args.req_ms:g} ms, {args.frames} frames"
    )
    for col in (
        "policy",
        "accuracy live / sim",
        "gap pts",
        "hit rate live / sim",
        "gap pts",
        "mean latency ms live / sim",
        "exits live",
        "exits sim",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        gap_acc = 100 * ((r["live_accuracy"] or 0) - (r["sim_accuracy"] or 0))
        gap_hit = 100 * (r["live_hit_rate"] - r["sim_hit_rate"])
        table.add_row(
            r["policy"],
            f"{r['live_accuracy']:.3f} / {r['sim_accuracy']:.3f}",
            f"{gap_acc:+.1f}",
            f"{r['live_hit_rate']:.3f} / {r['sim_hit_rate']:.3f}",
            f"{gap_hit:+.1f}",
            f"{1e3 * r['live_mean_latency_s']:.1f} / {1e3 * r['sim_mean_latency_s']:.1f}",
            str(r["live_exits"]),
            str(r["sim_exits"]),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
