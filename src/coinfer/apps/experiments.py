"""`coinfer experiment NAME`: a system's experiment (``systems.registry``) run on an engine,
its table and plots written to ``OUT/NAME/`` (table.md, table.json, PNGs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coinfer.apps.engine import ENGINES, Progress, engine_jobs
from coinfer.errors import BadValueError
from coinfer.report import ExperimentResult, write_result
from coinfer.systems import registry
from coinfer.systems.base import ExperimentContext


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment as asked: which, how big, where its results go, where its jobs run."""

    name: str
    out_root: Path = Path("results")
    quick: bool = False
    engine: str = "local"

    def __post_init__(self) -> None:
        if self.name not in registry.NAMES:
            names = ", ".join(registry.NAMES)
            raise BadValueError(f"unknown experiment {self.name!r}: choose from {names}")
        if self.engine not in ENGINES:
            engines = ", ".join(ENGINES)
            raise BadValueError(f"unknown engine {self.engine!r}: choose from {engines}")
        if self.engine not in ("local", "serial") and not registry.get(self.name).parallel:
            parallel = ", ".join(n for n in registry.NAMES if registry.get(n).parallel)
            raise BadValueError(
                f"experiment {self.name!r} runs in one process: --engine "
                f"{self.engine} is for {parallel}"
            )

    @property
    def out_dir(self) -> Path:
        return self.out_root / self.name


def run_experiment(
    name: str,
    out_root: Path,
    quick: bool = False,
    progress: Progress | None = None,
    engine: str = "local",
) -> ExperimentResult:
    """Run one system's experiment and write its results under ``out_root/name``; long ones
    report ``progress(what, done, total)``; independent jobs run on ``engine`` (local
    processes, serial, or ray: the same results)."""
    config = ExperimentConfig(name, out_root, quick, engine)
    context = ExperimentContext(config.out_dir, quick, progress, engine_jobs(engine))
    result = registry.get(name).experiment(context)
    write_result(result, config.out_dir)
    return result
