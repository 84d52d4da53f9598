"""The papers' experiments: each a function writing results/NAME/ (table.md, table.json, PNGs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coinfer.experiments import edgent, neurosurgeon
from coinfer.experiments.report import ExperimentResult, write_result

EXPERIMENTS: dict[str, Callable[[Path, bool], ExperimentResult]] = {
    "neurosurgeon": neurosurgeon.run,
    "edgent": edgent.run,
}


def run_experiment(name: str, out_root: Path, quick: bool = False) -> ExperimentResult:
    """Run one experiment and write its results under ``out_root/name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    out_dir = out_root / name
    result = EXPERIMENTS[name](out_dir, quick)
    write_result(result, out_dir)
    return result


__all__ = ["EXPERIMENTS", "ExperimentResult", "run_experiment"]
