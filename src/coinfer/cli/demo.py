"""`coinfer demo`: a system live on loopback for about a minute, with a live table, a plot and
a one-line verdict on what the user should have seen."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coinfer.cli.app import app, err, out
from coinfer.cli.common import fail


@app.command()
def demo(
    system: Annotated[
        str, typer.Option("--system", help="ans (default), edgent or stopping.")
    ] = "ans",
    duration: Annotated[
        float,
        typer.Option("--duration", min=2.0, help="Seconds to stream (ans: slowdown at half)."),
    ] = 50.0,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="A zoo model (default: the system's).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Emulated device class (default: the system's).")
    ] = None,
    slowdown: Annotated[
        float,
        typer.Option("--slowdown", min=1.0, help="ans: how much slower the edge gets, halfway."),
    ] = 30.0,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the PNG and table go.")] = Path(
        "results/demo"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the result rows as JSON.")] = False,
) -> None:
    """Edge servers and devices on loopback, real sockets, about a minute.

    ans: live μLinUCB against edge-only and device-only over a real 3G trace (sped up 8x), the
    edge slowing down halfway. edgent: dynamic vs static Edgent on BranchyNet AlexNet, the
    held-out digits, a 3G trace at half speed and a 100 ms deadline. stopping: the optimal
    stopping rule against the baselines on a Rayleigh-fading uplink, measured cost beside
    analytic cost.

    [bold]Examples[/]

      coinfer demo

      coinfer demo --system edgent --duration 60
    """
    from rich.live import Live

    from coinfer.report import cell_text, markdown_table
    from coinfer.runtime.client import FrameRecord
    from coinfer.runtime.demo import EXPECT, POLICIES, DemoConfig, run_demo

    try:
        config = DemoConfig(system, model, device, duration_s=duration, slowdown=slowdown)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    names = POLICIES[system]
    latest: dict[str, list[FrameRecord]] = {name: [] for name in names}
    tasks: dict[str, tuple[int, int]] = {}

    def render() -> Table:
        table = Table(title=f"coinfer demo --system {system}: {config.get('model')} on a "
                      f"{config.get('device')} device, edges on loopback ({duration:g} s)",
                      caption=f"expect: {EXPECT[system]}")  # fmt: skip
        if system == "stopping":
            for col in ("policy", "tasks done"):
                table.add_column(col)
            for name in names:
                done, total = tasks.get(name, (0, 0))
                table.add_row(name, f"{done}/{total}" if total else "")
            return table
        for col in ("policy", "frames", "mean latency s", "last cut", "offloaded", "fallbacks"):
            table.add_column(col, overflow="fold")
        for name, records in latest.items():
            mean = sum(r.total_s for r in records) / len(records) if records else None
            table.add_row(name, str(len(records)), cell_text(mean),
                          str(records[-1].cut) if records else "",
                          str(sum(r.offloaded for r in records)),
                          str(sum(r.fallback for r in records)))  # fmt: skip
        return table

    err.print(f"starting the edge server(s) and devices on loopback (expect: {EXPECT[system]}) ...")
    with Live(render(), console=err, refresh_per_second=4, transient=as_json) as live_view:

        def on_frame(name: str, record: FrameRecord) -> None:
            latest[name].append(record)
            live_view.update(render())

        def on_task(name: str, done: int, total: int) -> None:
            tasks[name] = (done, total)
            live_view.update(render())

        try:
            run = run_demo(config, on_frame, on_task)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    rows = run.rows()
    statement, held = run.verdict()
    out_dir.mkdir(parents=True, exist_ok=True)
    png = run.plot(out_dir / f"{system}.png")
    doc = {"system": system, "model": config.get("model"), "device": config.get("device"),
           "duration_s": duration, "expected": statement, "held": held, "rows": rows}  # fmt: skip
    (out_dir / "table.md").write_text(markdown_table(rows))
    (out_dir / "table.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = Table(title=f"coinfer demo --system {system}")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(cell_text(row.get(c)) for c in columns))
    out.print(table)
    out.print(f"expected: {statement} — {'yes, it did' if held else 'NOT this time'}")
    err.print(f"wrote {png}, {out_dir / 'table.md'} and table.json")
