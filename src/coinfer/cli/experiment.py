"""`coinfer experiment NAME`: one of the papers' experiments, its table and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coinfer.cli.app import app, err
from coinfer.cli.common import fail, print_json, progress_bars, user_errors, writable
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.output import SCHEMA


@app.command()
def experiment(
    name: Annotated[str, typer.Argument(help="neurosurgeon, edgent, ans, cans or stopping.")],
    quick: Annotated[bool, typer.Option("--quick", help="A small run, in seconds.")] = False,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Results go to OUT/NAME/ (table.md, table.json, PNGs).")
    ] = Path("results"),
    as_json: Annotated[
        bool, typer.Option("--json", help='Print the table as {"rows": [...]} on stdout.')
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="Where cans runs its fleets: local (a process per core), serial, or ray "
            "(pip install 'coinfer[distributed]'; RAY_ADDRESS picks a cluster). Same results.",
        ),
    ] = "local",
    fmt: TableFormat = None,
) -> None:
    """Run one of the papers' experiments and write its table and plots."""
    from coinfer.apps.engine import ENGINES, ray_available
    from coinfer.apps.experiments import EXPERIMENTS, run_experiment

    if name not in EXPERIMENTS:
        raise fail(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    if engine not in ENGINES:
        raise fail(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if engine == "ray" and not ray_available():
        raise fail("--engine ray needs Ray: pip install 'coinfer[distributed]' (or --engine local)")
    check_format(fmt)
    writable(out_dir / name, "--out", folder=True)
    err.print(f"running experiment {name}{' (quick)' if quick else ''} ...")
    with user_errors(f"experiment {name}"), progress_bars() as report:
        result = run_experiment(name, out_dir, quick, progress=report, engine=engine)
    if as_json:
        print_json(
            {
                "schema": SCHEMA,
                "experiment": name,
                "config": {"quick": quick, "engine": engine, **dict(result.config)},
                "rows": result.rows,
            }
        )
        return
    for title, rows in result.groups().items():
        heading = f"experiment {name}" + (f": {title}" if title else "")
        render(from_rows(heading, rows, caption="; ".join(result.notes[:1])), fmt)
    err.print(f"wrote {out_dir / name}/table.md, table.json and {len(result.plots)} plot(s)")
