"""`coinfer fleet`: many simulated devices sharing one edge (CANS), policies side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coinfer.cli.app import app
from coinfer.cli.common import fail, print_json, progress_bars
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.output import SCHEMA


@app.command()
def fleet(
    devices: Annotated[int, typer.Option("--devices", "-m", min=1, help="Devices M.")] = 2,
    types: Annotated[
        int, typer.Option("--types", "-k", min=1, help="Device types K (1-4), assigned in turn.")
    ] = 1,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "-p",
            help="Comma-separated, or all: oracle, device-only, edge-only, noncoop, fedlinucb, "
            "fedlinucb-d, fedlinucb-dw, fedlinucb-dw-periodic, fedlinucb-w.",
        ),
    ] = "noncoop,fedlinucb,fedlinucb-d,fedlinucb-dw",
    frames: Annotated[int, typer.Option("--frames", "-n", min=1, help="Frames per device.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seeds links, key frames and noise.")] = 0,
    learner: Annotated[
        str,
        typer.Option(
            "--learner", help="paper: DESIGN's μLinUCB (7 features); link: + link feature."
        ),
    ] = "link",
    link_scale: Annotated[
        float, typer.Option("--link-scale", min=0.0001, help="Multiply the HSDPA throughputs.")
    ] = 1.0,
    shared_uplink: Annotated[
        str | None,
        typer.Option("--shared-uplink", help="A common uplink capacity (e.g. 20mbps) on top."),
    ] = None,
    experience: Annotated[
        Path | None,
        typer.Option(
            "--experience",
            help="Folder of device-NNN.json offline experience (missing files are made there).",
        ),
    ] = None,
    warm_weight: Annotated[
        float, typer.Option("--warm-weight", help="Weight w of offline experience, in (0, 1].")
    ] = 0.5,
    growth: Annotated[
        float, typer.Option("--sync-growth", help="Sync when det(A) grows by 1 + this.")
    ] = 1.0,
    period: Annotated[
        int, typer.Option("--sync-period", min=1, help="Frames between periodic syncs.")
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"rows": [...]} for scripts.')
    ] = False,
    fmt: TableFormat = None,
) -> None:
    """Many devices sharing one edge (CANS): every policy on the same fleet, side by side."""
    from coinfer.experiments.cans import DEVICE_TYPES, simulate_fleet
    from coinfer.latency.link import parse_bandwidth
    from coinfer.sim.fleet_roster import FLEET_POLICIES, Federation

    check_format(fmt)
    names = list(FLEET_POLICIES) if policy == "all" else [p.strip() for p in policy.split(",")]
    if learner not in ("paper", "link"):
        raise fail(f"unknown learner {learner!r}: choose paper or link")
    if types > len(DEVICE_TYPES):
        raise fail(f"--types is at most {len(DEVICE_TYPES)} ({', '.join(DEVICE_TYPES)})")
    try:
        uplink = parse_bandwidth(shared_uplink, "--shared-uplink") if shared_uplink else None
        fed = Federation(warm_weight, growth, period, link_feature=learner == "link")
        with progress_bars() as report:
            rows = simulate_fleet(devices, types, names, frames, seed, fed, link_scale, uplink,
                                  experience, report)  # fmt: skip
    except ValueError as exc:
        raise fail(str(exc)) from exc
    config = {"devices": devices, "types": types, "policies": names, "frames": frames,
              "seed": seed, "learner": learner, "link_scale": link_scale,
              "shared_uplink": shared_uplink, "experience": str(experience) if experience else None,
              "warm_weight": warm_weight, "sync_growth": growth, "sync_period": period}  # fmt: skip
    if as_json:
        print_json({"schema": SCHEMA, "config": config, "rows": rows})
        return
    columns = ["policy", "mean_latency_s", "first_100_s", "vs_noncoop", "regret_s",
               "offload_share", "messages", "kbytes"]  # fmt: skip
    title = f"{devices} devices, {types} type(s), {frames} frames, learner {learner}"
    render(from_rows(title, rows, columns), fmt)
