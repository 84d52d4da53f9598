"""`coinfer demo`: a system live on loopback for about a minute, with a live table, a plot and
a one-line verdict on what the user should have seen."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coinfer.cli.app import app, err, out
from coinfer.cli.common import STAGE_LINE_EVERY_S, print_json, user_errors, writable
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.output import SCHEMA


@app.command()
def demo(
    system: Annotated[
        str, typer.Option("--system", help="ans (default), edgent, stopping or cans.")
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
    fmt: TableFormat = None,
) -> None:
    """Edge servers and devices on loopback, real sockets, about a minute.

    ans: live μLinUCB against edge-only and device-only over a real 3G trace (sped up 8x), the
    edge slowing down halfway. edgent: dynamic vs static Edgent on BranchyNet AlexNet, the
    held-out digits, a 3G trace at half speed and a 100 ms deadline. stopping: the optimal
    stopping rule against the baselines on a Rayleigh-fading uplink, measured cost beside
    analytic cost. cans: four device processes (VGG16 on a Jetson-Nano-class board) against one
    federated edge over WLAN-class links, a cooperating pair (FedLinUCB-DW) beside a
    non-cooperating one, messages and bytes counted, the fleet simulator's verdict on the same
    world beside (about two minutes: the cooperating boards measure their experience first).

    Examples:

    \b
      coinfer demo
      coinfer demo --system edgent --duration 60
      coinfer demo --system cans --duration 60
    """
    from rich.live import Live

    from coinfer.apps.demo import EXPECT, POLICIES, DemoConfig, run_demo
    from coinfer.device.client import FrameRecord
    from coinfer.output import cell_text, dumps
    from coinfer.report import markdown_table

    check_format(fmt)
    writable(out_dir, "--out", folder=True)
    with user_errors():
        config = DemoConfig(system, model, device, duration_s=duration, slowdown=slowdown)
    names = POLICIES[system]
    latest: dict[str, list[FrameRecord]] = {name: [] for name in names}
    tasks: dict[str, tuple[int, int]] = {}

    def live_table() -> Table:
        table = Table(
            title=f"coinfer demo --system {system}: {config.get('model')} on a "
            f"{config.get('device')} device, edges on loopback ({duration:g} s)",
            caption=f"expect: {EXPECT[system]}",
        )
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
            table.add_row(
                name,
                str(len(records)),
                cell_text(mean),
                str(records[-1].cut) if records else "",
                str(sum(r.offloaded for r in records)),
                str(sum(r.fallback for r in records)),
            )
        return table

    err.print(f"starting the edge server(s) and devices on loopback (expect: {EXPECT[system]}) ...")
    if err.is_terminal:
        view: Any = Live(live_table(), console=err, refresh_per_second=4, transient=as_json)
    else:  # a pipe or a log: a stage line every STAGE_LINE_EVERY_S instead of a live table
        view = _StageLines(latest, tasks)
    with view as live_view:

        def on_frame(name: str, record: FrameRecord) -> None:
            latest[name].append(record)
            live_view.update(live_table())

        def on_task(name: str, done: int, total: int) -> None:
            tasks[name] = (done, total)
            live_view.update(live_table())

        def on_stage(text: str) -> None:
            err.print(f"coinfer: demo: {text}", markup=False, soft_wrap=True)

        with user_errors():
            run = run_demo(config, on_frame, on_task, on_stage)
    rows = run.rows()
    statement, held = run.verdict()
    for warning in run.warnings:
        err.print(f"warning: {warning}", markup=False)
    config_doc = {
        "system": system,
        "model": config.get("model"),
        "device": config.get("device"),
        "duration_s": duration,
        "slowdown": slowdown,
        **config.link_spec(),
    }
    doc = {
        "schema": SCHEMA,
        "config": config_doc,
        **config_doc,
        "expected": statement,
        "held": held,
        "warnings": run.warnings,
        "rows": rows,
    }
    if run.cans is not None:
        doc["pairs_s"] = run.pairs()
        doc["simulated_pairs_s"] = run.cans.simulated
        doc["simulation_agrees"] = run.agreement()
        doc["groups"] = run.cans.groups
    with user_errors(f"--out {out_dir}"):
        out_dir.mkdir(parents=True, exist_ok=True)
        png = run.plot(out_dir / f"{system}.png")
        (out_dir / "table.md").write_text(markdown_table(rows))
        (out_dir / "table.json").write_text(dumps(doc) + "\n")
    if as_json:
        print_json(doc)
        return
    render(from_rows(f"coinfer demo --system {system}", rows), fmt)
    out.print(f"expected: {statement} — {'yes, it did' if held else 'NOT this time'}", markup=False)
    if run.cans is not None:
        live, sim = run.pairs(), run.cans.simulated
        out.print(
            f"pairs, mean latency: live cooperating {cell_text(live['cooperating'])} s, "
            f"alone {cell_text(live['alone'])} s; simulated (the same world, as many "
            f"frames) cooperating {cell_text(sim.get('cooperating'))} s, alone "
            f"{cell_text(sim.get('alone'))} s; agree in direction: "
            f"{cell_text(run.agreement())}",
            markup=False,
        )
    err.print(f"wrote {png}, {out_dir / 'table.md'} and table.json")


class _StageLines:
    """The live table's substance as a line on stderr every STAGE_LINE_EVERY_S."""

    def __init__(self, latest: dict[str, list[Any]], tasks: dict[str, tuple[int, int]]) -> None:
        self.latest, self.tasks = latest, tasks
        self.last = time.monotonic()

    def __enter__(self) -> _StageLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.line()

    def update(self, _: object) -> None:
        if time.monotonic() - self.last >= STAGE_LINE_EVERY_S:
            self.line()

    def line(self) -> None:
        self.last = time.monotonic()
        if self.tasks:
            parts = [f"{n} {d}/{t} tasks" for n, (d, t) in self.tasks.items()]
        else:
            parts = [f"{n} {len(r)} frames" for n, r in self.latest.items()]
        sys.stderr.write(f"coinfer: demo: {', '.join(parts)}\n")
        sys.stderr.flush()
