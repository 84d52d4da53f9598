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
        int | None,
        typer.Option(
            "--types", "-k", min=1, help="Device types K (1-4) of the 3g world, in turn [1]."
        ),
    ] = None,
    world_name: Annotated[
        str,
        typer.Option(
            "--world",
            help="3g: devices on their own 3G links; prototype: one type on WLAN-class links "
            "near a fast edge (the CANS prototype); mixed: one board on WLAN and on 3G in turn.",
        ),
    ] = "3g",
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
    """Many devices sharing one edge (CANS): every policy on the same fleet, side by side.

    \b
    Examples:
      coinfer fleet --world prototype --learner paper -p all
      coinfer fleet --world mixed -m 10 -p noncoop,fedlinucb-w,fedlinucb-dw --learner paper
      coinfer fleet -m 50 -k 3 --json
    """
    from coinfer.latency.link import parse_bandwidth
    from coinfer.sim.fleet_policies import FLEET_POLICIES, Federation
    from coinfer.systems.cans.experiment import simulate_fleet
    from coinfer.systems.cans.worlds import DEVICE_TYPES, WORLDS

    check_format(fmt)
    names = list(FLEET_POLICIES) if policy == "all" else [p.strip() for p in policy.split(",")]
    if learner not in ("paper", "link"):
        raise fail(f"unknown learner {learner!r}: choose paper or link")
    if world_name not in WORLDS:
        raise fail(f"unknown world {world_name!r}: choose from {', '.join(WORLDS)}")
    if world_name == "3g":
        types = types or 1
        if types > len(DEVICE_TYPES):
            raise fail(f"--types is at most {len(DEVICE_TYPES)} ({', '.join(DEVICE_TYPES)})")
    elif types is not None:
        raise fail(f"the {world_name} world sets its own device types: drop --types")
    try:
        uplink = parse_bandwidth(shared_uplink, "--shared-uplink") if shared_uplink else None
        fed = Federation(warm_weight, growth, period, link_feature=learner == "link")
        with progress_bars() as report:
            rows = simulate_fleet(
                devices,
                types,
                names,
                frames,
                seed,
                fed,
                link_scale,
                uplink,
                experience,
                report,
                world_name,
            )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    config = {
        "world": world_name,
        "devices": devices,
        "types": types,
        "policies": names,
        "frames": frames,
        "seed": seed,
        "learner": learner,
        "link_scale": link_scale,
        "shared_uplink": shared_uplink,
        "experience": str(experience) if experience else None,
        "warm_weight": warm_weight,
        "sync_growth": growth,
        "sync_period": period,
    }
    if as_json:
        print_json({"schema": SCHEMA, "config": config, "rows": rows})
        return
    columns = [
        "policy",
        "mean_latency_s",
        "first_100_s",
        "first_200_s",
        "vs_noncoop",
        "regret_s",
        "offload_share",
        "messages",
        "kbytes",
    ]
    kinds = rows[0]["types"] if rows else types
    title = (
        f"{world_name} world: {devices} devices, {kinds} type(s), {frames} frames, "
        f"learner {learner}"
    )
    render(from_rows(title, rows, columns), fmt)
