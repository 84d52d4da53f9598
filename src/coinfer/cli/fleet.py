"""`coinfer fleet`: many simulated devices sharing one edge (CANS), policies side by side."""

from __future__ import annotations

from typing import Annotated

import typer

from coinfer.cli.common import (
    check_choice,
    command,
    config_doc,
    names_of,
    print_json,
    progress_bars,
)
from coinfer.cli.options import Experience, Frames, Json, Learner, Policy, Seed
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.errors import BadValueError
from coinfer.output import SCHEMA
from coinfer.policies.fedlinucb import Federation
from coinfer.sim.fleet_policies import FLEET_POLICIES
from coinfer.units import parse_bandwidth

Devices = Annotated[int, typer.Option("--devices", "-M", min=1, help="Devices M.")]
Types = Annotated[
    int | None,
    typer.Option("--types", "-k", min=1, help="Device types K (1-4) of the 3g world, in turn [1]."),
]
World = Annotated[
    str,
    typer.Option(
        "--world",
        help="3g: devices on their own 3G links; prototype: one type on WLAN-class links near a "
        "fast edge (the CANS prototype); mixed: one board on WLAN and on 3G in turn.",
    ),
]
LinkScale = Annotated[
    float, typer.Option("--link-scale", min=0.0001, help="Multiply the HSDPA throughputs.")
]
SharedUplink = Annotated[
    str | None,
    typer.Option("--shared-uplink", help="A common uplink capacity (e.g. 20mbps) on top."),
]
WarmWeight = Annotated[
    float, typer.Option("--warm-weight", help="Weight w of offline experience, in (0, 1].")
]
SyncGrowth = Annotated[
    float, typer.Option("--sync-growth", help="Sync when det(A) grows by 1 + this.")
]
SyncPeriod = Annotated[
    int, typer.Option("--sync-period", min=1, help="Frames between periodic syncs.")
]


@command()
def fleet(
    devices: Devices = 2,
    types: Types = None,
    world: World = "3g",
    policy: Policy = "noncoop,fedlinucb,fedlinucb-d,fedlinucb-dw",
    frames: Frames = 1000,
    seed: Seed = 0,
    learner: Learner = "link",
    link_scale: LinkScale = 1.0,
    shared_uplink: SharedUplink = None,
    experience: Experience = None,
    warm_weight: WarmWeight = 0.5,
    growth: SyncGrowth = 1.0,
    period: SyncPeriod = 20,
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """Many devices sharing one edge (CANS): every policy on the same fleet, side by side.

    \\b
    Examples:
      coinfer fleet --world prototype --learner paper -p all
      coinfer fleet --world mixed -M 10 -p noncoop,fedlinucb-w,fedlinucb-dw --learner paper
      coinfer fleet -M 50 -k 3 --json
    """
    from coinfer.systems.cans.fleet import FleetConfig, simulate_fleet  # torch: the models

    check_format(fmt)
    if learner not in ("paper", "link"):
        raise BadValueError(f"unknown learner {learner!r}: choose paper or link")
    check_choice("--learner", learner, ("paper", "link"))
    uplink = parse_bandwidth(shared_uplink, "--shared-uplink") if shared_uplink else None
    federation = Federation(warm_weight, growth, period, link_feature=learner == "link")
    config = FleetConfig(
        devices,
        types,
        world,
        tuple(names_of(policy, FLEET_POLICIES)),
        frames,
        seed,
        federation,
        link_scale,
        uplink,
        experience,
    )
    with progress_bars() as report:
        rows = simulate_fleet(config, report)
    doc = {
        "schema": SCHEMA,
        "config": config_doc(config) | {"learner": learner, "shared_uplink": shared_uplink},
        "rows": rows,
    }
    if as_json:
        print_json(doc)
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
    title = f"{world} world: {devices} devices, {kinds} type(s), {frames} frames, learner {learner}"
    render(from_rows(title, rows, columns), fmt)
