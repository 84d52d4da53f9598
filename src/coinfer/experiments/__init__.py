"""The papers' experiments: each a function writing results/NAME/ (table.md, table.json, PNGs)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from coinfer.experiments import ans, edgent, neurosurgeon, stopping
from coinfer.experiments.report import ExperimentResult, write_result

Progress = Callable[[str, int, int], None]

EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "neurosurgeon": neurosurgeon.run,
    "edgent": edgent.run,
    "ans": ans.run,
    "stopping": stopping.run,
}


def run_experiment(
    name: str, out_root: Path, quick: bool = False, progress: Progress | None = None
) -> ExperimentResult:
    """Run one experiment and write its results under ``out_root/name``; experiments that take
    long report ``progress(what, done, total)``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    out_dir = out_root / name
    func = EXPERIMENTS[name]
    if "progress" in inspect.signature(func).parameters:
        result = func(out_dir, quick, progress=progress)
    else:
        result = func(out_dir, quick)
    write_result(result, out_dir)
    return result


__all__ = ["EXPERIMENTS", "ExperimentResult", "run_experiment"]
