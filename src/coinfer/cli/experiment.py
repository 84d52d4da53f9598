"""`coinfer experiment NAME`: one of the papers' experiments, its table and plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coinfer.cli.app import app, err, out
from coinfer.cli.common import fail, progress_bars


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
) -> None:
    """Run one of the papers' experiments and write its table and plots."""
    from coinfer.experiments import EXPERIMENTS, run_experiment
    from coinfer.experiments.engine import ENGINES, ray_available
    from coinfer.report import cell_text

    if name not in EXPERIMENTS:
        raise fail(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    if engine not in ENGINES:
        raise fail(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if engine == "ray" and not ray_available():
        raise fail("--engine ray needs Ray: pip install 'coinfer[distributed]' (or --engine local)")
    err.print(f"running experiment {name}{' (quick)' if quick else ''} ...")
    try:
        with progress_bars() as report:
            result = run_experiment(name, out_dir, quick, progress=report, engine=engine)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps({"rows": result.rows}, indent=2) + "\n")
        return
    for title, rows in result.groups().items():
        table = Table(title=f"experiment {name}" + (f": {title}" if title else ""),
                      caption="; ".join(result.notes[:1]))  # fmt: skip
        columns = list(dict.fromkeys(k for row in rows for k in row))
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            cells = (row.get(c) for c in columns)
            table.add_row(*(cell_text(v) for v in cells))
        out.print(table)
    err.print(f"wrote {out_dir / name}/table.md, table.json and {len(result.plots)} plot(s)")
