"""Partitioning cost and split overhead for every zoo model.

For each model: the time to trace and enumerate the cuts (``coinfer.partition``) at both
granularities, and, at every cut, the time of ``back(*front(x))`` over the time of the monolithic
``model(x)``: timed in alternating blocks, the median of the paired ratios. Goal: ratio <= 1.03
at every cut, measured in one run.

    python benchmarks/bench_partition.py [--models vgg16,resnet18] [--granularity layer]
        [--repeats 15] [--threads 2] [--allocator steady|default] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from coinfer import partition, zoo
from coinfer.latency import configure_host


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_time(fn: Callable[[], Any], runs: int) -> float:
    return statistics.median(_seconds(fn) for _ in range(runs))


def _block(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call over ``calls`` back-to-back calls: short models are timed in blocks
    long enough (>= ~20 ms) that timer and scheduler noise stay small."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def partition_fn(model: torch.nn.Module, inputs: Any, granularity: str) -> Callable[[], Any]:
    return lambda: partition(model, inputs, granularity=granularity)


def bench_model(name: str, granularity: str, repeats: int) -> dict[str, Any]:
    model = zoo.create(name)
    inputs = zoo.example_inputs(name)
    trace_s = {}
    for g in ("layer", "node"):
        trace_s[g] = _median_time(partition_fn(model, inputs, g), 3)
    cuts = {g: partition(model, inputs, granularity=g).num_cuts for g in ("layer", "node")}
    part = partition(model, inputs, granularity=granularity)

    def monolithic() -> Any:
        return model(*inputs)

    for _ in range(2):
        monolithic()
    calls = max(1, round(0.02 / _median_time(monolithic, 5)))
    ratios = []
    mono_all = []
    for cut in part.cuts:
        front, back = part.split(cut.index)

        def split_run(front: Any = front, back: Any = back) -> Any:
            return back(*front(*inputs))

        split_run()
        mono, split = [], []
        for _ in range(repeats):  # interleaved, so drift hits both alike
            mono.append(_block(monolithic, calls))
            split.append(_block(split_run, calls))
        mono_all += mono
        # Median of paired ratios: each pair ran back to back, so slow drift cancels.
        ratios.append(statistics.median(s / m for s, m in zip(split, mono, strict=True)))
    worst = max(range(len(ratios)), key=ratios.__getitem__)
    return {
        "model": name,
        "cuts_layer": cuts["layer"],
        "cuts_node": cuts["node"],
        "trace_layer_ms": 1e3 * trace_s["layer"],
        "trace_node_ms": 1e3 * trace_s["node"],
        "monolithic_ms": 1e3 * statistics.median(mono_all),
        "median_ratio": statistics.median(ratios),
        "worst_ratio": ratios[worst],
        "worst_cut": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(zoo.names()))
    parser.add_argument("--granularity", choices=("layer", "node"), default="layer")
    parser.add_argument("--repeats", type=int, default=15, help="timed blocks per cut and side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--allocator",
        choices=("steady", "default"),
        default="steady",
        help="steady: keep large blocks on glibc's heap (see coinfer.latency.host); "
        "default: glibc as it comes",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    host = configure_host(args.threads, steady_alloc=args.allocator == "steady")

    rows = []
    names = [n for n in args.models.split(",") if n]
    with torch.inference_mode(), Progress(transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(names))
        for name in names:
            progress.update(task, description=f"benchmarking {name}")
            rows.append(bench_model(name, args.granularity, args.repeats))
            progress.advance(task)

    if args.json:
        print(json.dumps({"granularity": args.granularity, "host": host, "rows": rows}, indent=2))
        return
    table = Table(
        title=f"partition cost and split overhead ({args.granularity} cuts, "
        f"{host['threads']} threads, {args.allocator} allocator)"
    )
    for col in (
        "model",
        "cuts layer/node",
        "trace ms layer/node",
        "monolithic ms",
        "split/mono median",
        "worst (cut)",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['cuts_layer']}/{r['cuts_node']}",
            f"{r['trace_layer_ms']:.0f}/{r['trace_node_ms']:.0f}",
            f"{r['monolithic_ms']:.2f}",
            f"{r['median_ratio']:.3f}",
            f"{r['worst_ratio']:.3f} ({r['worst_cut']})",
        )
    console = Console()
    console.print(table)
    slowest = max(rows, key=lambda r: max(r["trace_layer_ms"], r["trace_node_ms"]))
    worst = max(rows, key=lambda r: r["worst_ratio"])
    console.print(
        f"slowest trace: {slowest['model']} "
        f"{max(slowest['trace_layer_ms'], slowest['trace_node_ms']):.0f} ms; "
        f"worst split/monolithic: {worst['worst_ratio']:.3f} ({worst['model']}, cut "
        f"{worst['worst_cut']}); goal <= 1.03"
    )


if __name__ == "__main__":
    main()
