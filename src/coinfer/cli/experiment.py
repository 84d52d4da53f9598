"""`coinfer experiment NAME`: one of the papers' experiments, its table and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coinfer.apps.engine import ray_available
from coinfer.apps.experiments import ExperimentConfig, run_experiment
from coinfer.cli.app import err
from coinfer.cli.common import command, config_doc, print_json, progress_bars, writable
from coinfer.cli.options import Json, Out
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.errors import BadValueError
from coinfer.output import SCHEMA
from coinfer.systems import registry

Quick = Annotated[bool, typer.Option("--quick", help="A small run, in seconds.")]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where an experiment runs its independent jobs (cans: its fleets): local (a "
        "process per core), serial, or ray (pip install 'coinfer[distributed]'; RAY_ADDRESS "
        "picks a cluster). Same results.",
    ),
]


@command()
def experiment(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(registry.NAMES)}.")],
    quick: Quick = False,
    out_dir: Out = Path("results"),
    as_json: Json = False,
    engine: Engine = "local",
    fmt: TableFormat = None,
) -> None:
    """Run one of the papers' experiments and write its table and plots to OUT/NAME/
    (table.md, table.json, PNGs).

    Examples:

    \\b
      coinfer experiment neurosurgeon --quick
      coinfer experiment cans --engine ray
    """
    check_format(fmt)
    config = ExperimentConfig(name, out_dir or Path("results"), quick, engine)
    if engine == "ray" and not ray_available():
        raise BadValueError(
            "--engine ray needs Ray: pip install 'coinfer[distributed]' (or --engine local)"
        )
    writable(config.out_dir, "--out", folder=True)
    err.print(f"running experiment {name}{' (quick)' if quick else ''} ...")
    with progress_bars() as report:
        result = run_experiment(name, config.out_root, quick, progress=report, engine=engine)
    if as_json:
        print_json(
            {
                "schema": SCHEMA,
                "experiment": name,
                "config": config_doc(config) | dict(result.config),
                "rows": result.rows,
            }
        )
        return
    for title, rows in result.groups().items():
        heading = f"experiment {name}" + (f": {title}" if title else "")
        render(from_rows(heading, rows, caption="; ".join(result.notes[:1])), fmt)
    err.print(f"wrote {config.out_dir}/table.md, table.json and {len(result.plots)} plot(s)")
