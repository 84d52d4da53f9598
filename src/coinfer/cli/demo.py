"""`coinfer demo`: a system live on loopback for about a minute, with a live table, a plot and
a one-line verdict on what the user should have seen."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from coinfer.cli.app import err, out
from coinfer.cli.common import (
    STAGE_LINE_EVERY_S,
    command,
    print_json,
    stage_line,
    writable,
)
from coinfer.cli.options import DeviceOrDefault, Json, Models, Out, Slowdown
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.device.records import FrameRecord
from coinfer.errors import BadValueError
from coinfer.output import cell_text
from coinfer.systems.base import DemoConfig

System = Annotated[str, typer.Option("--system", help="ans (default), edgent, stopping or cans.")]
Duration = Annotated[
    float,
    typer.Option("--duration", min=2.0, help="Seconds to stream (ans: the slowdown at half)."),
]


class LiveView:
    """What the demo shows while it runs (``systems.base.DemoHooks``): a live table on a
    terminal, a stage line every STAGE_LINE_EVERY_S elsewhere."""

    def __init__(self, config: DemoConfig, devices: tuple[str, ...], expect: str) -> None:
        self.config, self.expect = config, expect
        self.latest: dict[str, list[FrameRecord]] = {name: [] for name in devices}
        self.tasks: dict[str, tuple[int, int]] = {}
        self.live: Any = None
        self.last = time.monotonic()

    def __enter__(self) -> LiveView:
        if err.is_terminal:
            self.live = Live(self.table(), console=err, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
        else:
            self.line()

    def table(self) -> Table:
        from coinfer.apps.demo import default

        config = self.config
        table = Table(
            title=f"coinfer demo --system {config.system}: {default(config, 'model')} "
            f"on a {default(config, 'device')} device, edges on loopback "
            f"({config.duration_s:g} s)",
            caption=f"expect: {self.expect}",
        )
        if self.tasks or config.system == "stopping":
            for col in ("policy", "tasks done"):
                table.add_column(col)
            for name in self.latest:
                done, total = self.tasks.get(name, (0, 0))
                table.add_row(name, f"{done}/{total}" if total else "")
            return table
        for col in ("policy", "frames", "mean latency s", "last cut", "offloaded", "fallbacks"):
            table.add_column(col, overflow="fold")
        for name, records in self.latest.items():
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

    def _changed(self) -> None:
        if self.live is not None:
            self.live.update(self.table())
        elif time.monotonic() - self.last >= STAGE_LINE_EVERY_S:
            self.line()

    def line(self) -> None:
        self.last = time.monotonic()
        if self.tasks:
            parts = [f"{n} {d}/{t} tasks" for n, (d, t) in self.tasks.items()]
        else:
            parts = [f"{n} {len(r)} frames" for n, r in self.latest.items()]
        stage_line(f"demo: {', '.join(parts)}")

    # DemoHooks
    def frame(self, device: str, record: FrameRecord) -> None:
        self.latest.setdefault(device, []).append(record)
        self._changed()

    def task(self, device: str, done: int, total: int) -> None:
        self.tasks[device] = (done, total)
        self._changed()

    def stage(self, text: str) -> None:
        err.print(f"coinfer: demo: {text}", markup=False, soft_wrap=True)


@command()
def demo(
    system: System = "ans",
    duration: Duration = 50.0,
    model: Models = None,
    device: DeviceOrDefault = None,
    slowdown: Slowdown = 30.0,
    out_dir: Out = Path("results/demo"),
    as_json: Json = False,
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
    from coinfer.apps.demo import demo_spec, run_demo, write_demo

    check_format(fmt)
    folder = out_dir or Path("results/demo")
    writable(folder, "--out", folder=True)
    if model is not None and len(model) != 1:
        raise BadValueError("give one --model")
    config = DemoConfig(
        system, model[0] if model else None, device, duration_s=duration, slowdown=slowdown
    )
    spec = demo_spec(config)
    err.print(f"starting the edge server(s) and devices on loopback (expect: {spec.expect}) ...")
    with LiveView(config, spec.devices, spec.expect) as view:
        run = run_demo(config, view)
    for warning in run.warnings:
        err.print(f"warning: {warning}", markup=False)
    png, doc = write_demo(run, folder)
    if as_json:
        print_json(doc)
        return
    render(from_rows(f"coinfer demo --system {system}", doc["rows"]), fmt)
    for line in run.details():
        out.print(line, markup=False)
    for line in run.verdict().lines():
        out.print(line, markup=False)
    err.print(f"wrote {png}, {png.parent / 'table.md'} and table.json")
