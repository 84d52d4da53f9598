"""Each zoo model's fronts in ONNX Runtime against torch eager on this CPU: per cut, the median
seconds of each and their ratio (ONNX Runtime / torch), timed in alternating blocks so both see
the same machine.

Bundles come from ``--bundles DIR`` (``DIR/MODEL``, as ``coinfer export MODEL --out
DIR/MODEL`` writes them) or are exported into a temporary folder first (fronts only are timed;
exporting every cut of the big models takes minutes).

    python benchmarks/bench_onnx_fronts.py [--models alexnet,resnet18] [--bundles DIR]
        [--repeats 15] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from coinfer.assembly import load_model
from coinfer.bundle.export import ExportConfig, export_bundle
from coinfer.bundle.runtime import OnnxBundle, check_same_model
from coinfer.latency import configure_host
from coinfer.zoo.spec import ModelSpec

MODELS = (
    "mlp",
    "branchy_alexnet",
    "alexnet",
    "resnet18",
    "mobilenet_v2",
    "googlenet",
    "tiny_yolov2",
    "resnet50",
    "vgg16",
)
BLOCK_S = 0.02  # each timed block lasts at least this long


def _calls(fn: Callable[[], Any]) -> int:
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, int(BLOCK_S / once))


def _block(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def _pair(
    ort_fn: Callable[[], Any], torch_fn: Callable[[], Any], repeats: int
) -> tuple[float, float]:
    """Median seconds per call of each, in alternating blocks."""
    for fn in (ort_fn, torch_fn):
        fn()
    calls = min(_calls(ort_fn), _calls(torch_fn))
    ort_s, torch_s = [], []
    for _ in range(repeats):
        ort_s.append(_block(ort_fn, calls))
        torch_s.append(_block(torch_fn, calls))
    return statistics.median(ort_s), statistics.median(torch_s)


def _bundle(name: str, root: Path | None, scratch: Path) -> Path:
    if root is not None and (root / name / "manifest.json").is_file():
        return root / name
    out = scratch / name
    print(f"exporting {name}'s fronts into {out} ...", file=sys.stderr, flush=True)
    export_bundle(ExportConfig(ModelSpec(name), out, parts="fronts"))
    return out


def measure(name: str, bundle: Path, repeats: int, threads: int) -> dict[str, Any]:
    setup = load_model(name)
    fronts = OnnxBundle(bundle, threads=threads)
    check_same_model(fronts, setup.part.fingerprint, name)
    inputs = [t.numpy() for t in setup.inputs]
    rows: list[dict[str, Any]] = []
    for cut in setup.part.cuts[1:]:
        if not fronts.runnable(cut.index):
            rows.append({"cut": cut.index, "name": cut.name, "onnx_ms": None, "torch_ms": None})
            continue
        front, _ = setup.torch_path().split(cut.index)
        front.eval()

        def run_torch(front: torch.nn.Module = front) -> None:
            with torch.inference_mode():
                front(*setup.inputs)

        def run_onnx(k: int = cut.index) -> None:
            fronts.front(k, inputs)

        ort_s, torch_s = _pair(run_onnx, run_torch, repeats)
        rows.append(
            {
                "cut": cut.index,
                "name": cut.name,
                "onnx_ms": 1e3 * ort_s,
                "torch_ms": 1e3 * torch_s,
                "ratio": ort_s / torch_s,
            }
        )
    ratios = [float(r["ratio"]) for r in rows if r.get("ratio") is not None]
    return {
        "model": name,
        "cuts": rows,
        "median_ratio": statistics.median(ratios) if ratios else None,
        "min_ratio": min(ratios, default=None),
        "max_ratio": max(ratios, default=None),
        "whole_ratio": ratios[-1] if ratios else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--bundles", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_host(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in [m for m in args.models.split(",") if m]:
            bundle = _bundle(name, args.bundles, Path(scratch))
            results.append(measure(name, bundle, args.repeats, args.threads))
            r = results[-1]
            print(
                f"{name}: ONNX Runtime / torch eager per cut: median {r['median_ratio']:.2f}, "
                f"range {r['min_ratio']:.2f}..{r['max_ratio']:.2f}, whole model "
                f"{r['whole_ratio']:.2f}",
                file=sys.stderr,
                flush=True,
            )
    if args.json:
        print(json.dumps({"threads": args.threads, "repeats": args.repeats, "models": results}))
        return
    for r in results:
        print(f"\n{r['model']}")
        print(f"{'cut':>4} {'front ends at':<22} {'onnx ms':>10} {'torch ms':>10} {'ratio':>7}")
        for row in r["cuts"]:
            if row["onnx_ms"] is None:
                print(f"{row['cut']:>4} {row['name']:<22} {'(no front)':>10}")
                continue
            print(
                f"{row['cut']:>4} {row['name']:<22} {row['onnx_ms']:>10.3f} "
                f"{row['torch_ms']:>10.3f} {row['ratio']:>7.2f}"
            )
    print("\nmodel             median ratio   range          whole model")
    for r in results:
        print(
            f"{r['model']:<17} {r['median_ratio']:>12.2f}   "
            f"{r['min_ratio']:.2f}..{r['max_ratio']:<8.2f} {r['whole_ratio']:>8.2f}"
        )


if __name__ == "__main__":
    main()
