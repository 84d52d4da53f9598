"""μLinUCB against the ANS authors' own code, on coinfer's simulator.

A held-out run of the authors' published μLinUCB (unchanged) on the same worlds, seeds and
frame counts gave the ``authors`` column below (mean delay ÷ Oracle's, mean over seeds 0-2,
5,000 frames; issue 15). This runs coinfer's ``mulinucb`` (the authors' algorithm, DESIGN §4)
and its tuned variants on the same cells and prints each ratio beside theirs, and how far
``mulinucb`` is from it. Not a test: 24 simulations of 5,000 frames take minutes.

    python benchmarks/bench_mulinucb.py [--frames 5000] [--seeds 0 1 2] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from typing import Any

from coinfer.cli.tables import TableData, plain
from coinfer.systems.ans.scenarios import SCENARIOS
from coinfer.systems.ans.simulate import simulate

MODELS = ("vgg16", "tiny_yolov2")
POLICIES = ("mulinucb", "mulinucb-scaled", "mulinucb-discounted", "mulinucb-link")
AUTHORS = {  # the authors' code, mean delay / Oracle's (issue 15's held-out comparison)
    ("vgg16", "stationary"): 1.018,
    ("vgg16", "network-change"): 1.492,
    ("vgg16", "edge-change"): 1.066,
    ("vgg16", "hsdpa"): 1.101,
    ("tiny_yolov2", "stationary"): 1.035,
    ("tiny_yolov2", "network-change"): 1.500,
    ("tiny_yolov2", "edge-change"): 1.165,
    ("tiny_yolov2", "hsdpa"): 1.150,
}


def cell(model: str, scenario: str, frames: int, seeds: list[int]) -> dict[str, Any]:
    ratios: dict[str, list[float]] = {p: [] for p in POLICIES}
    for seed in seeds:
        sim = simulate(model, scenario, ("oracle", *POLICIES), frames, seed)
        oracle = sim.runs["oracle"].mean_delay_s
        for p in POLICIES:
            ratios[p].append(sim.runs[p].mean_delay_s / oracle)
    row: dict[str, Any] = {
        "model": model,
        "scenario": scenario,
        "authors": AUTHORS[model, scenario],
    }
    for p in POLICIES:
        row[p] = statistics.fmean(ratios[p])
        row[f"{p}_worst_seed"] = max(ratios[p])
    row["mulinucb_vs_authors"] = row["mulinucb"] / row["authors"] - 1
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = []
    for model, scenario in itertools.product(args.models, args.scenarios):
        rows.append(cell(model, scenario, args.frames, args.seeds))
        if not args.json:
            r = rows[-1]
            print(
                f"{model}/{scenario}: mulinucb {r['mulinucb']:.3f} authors {r['authors']:.3f}",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = TableData(
        f"mean delay / Oracle's ({args.frames} frames, seeds {args.seeds})",
        ["model", "scenario", "authors", *POLICIES, "mulinucb vs authors"],
        left={"model", "scenario"},
    )
    for r in rows:
        table.add(
            r["model"],
            r["scenario"],
            f"{r['authors']:.3f}",
            *(f"{r[p]:.3f}" for p in POLICIES),
            f"{r['mulinucb_vs_authors']:+.1%}",
        )
    print(plain(table), end="")
    worst = max(abs(r["mulinucb_vs_authors"]) for r in rows)
    print(f"largest gap between mulinucb and the authors' code: {worst:.1%} (the bar: 5%)")


if __name__ == "__main__":
    main()
