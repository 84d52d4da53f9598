"""The papers' experiments: each a function writing results/NAME/ (table.md, table.json, PNGs)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from coinfer.errors import BadValueError
from coinfer.report import ExperimentResult, write_result
from coinfer.systems.ans import experiment as ans
from coinfer.systems.cans import experiment as cans
from coinfer.systems.edgent import experiment as edgent
from coinfer.systems.neurosurgeon import experiment as neurosurgeon
from coinfer.systems.stopping import experiment as stopping

Progress = Callable[[str, int, int], None]

EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "neurosurgeon": neurosurgeon.run,
    "edgent": edgent.run,
    "ans": ans.run,
    "cans": cans.run,
    "stopping": stopping.run,
}


def run_experiment(
    name: str,
    out_root: Path,
    quick: bool = False,
    progress: Progress | None = None,
    engine: str = "local",
) -> ExperimentResult:
    """Run one experiment and write its results under ``out_root/name``; experiments that take
    long report ``progress(what, done, total)``; sweeps run their jobs on ``engine`` (local
    processes, serial, or ray)."""
    if name not in EXPERIMENTS:
        raise BadValueError(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    out_dir = out_root / name
    func = EXPERIMENTS[name]
    accepted = inspect.signature(func).parameters
    options: dict[str, object] = {}
    if "progress" in accepted:
        options["progress"] = progress
    if "engine" in accepted:
        options["engine"] = engine
    elif engine not in ("local", "serial"):
        raise BadValueError(
            f"experiment {name!r} runs in one process: --engine {engine} is for cans"
        )
    result = func(out_dir, quick, **options)
    write_result(result, out_dir)
    return result


__all__ = ["EXPERIMENTS", "ExperimentResult", "run_experiment"]
