"""`coinfer plan`: where to cut a model (and, with Edgent, how deep to run it) for a device, an
edge and a link, with the predicted breakdown (``apps.plan``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from coinfer.cli.common import command, config_doc, model_spec, print_json, stage, user_errors
from coinfer.cli.options import (
    Bandwidth,
    Bundle,
    Device,
    EdgeClass,
    Granularity,
    InputShapes,
    Json,
    LatencyReq,
    Leaf,
    ModelArgs,
    ModelArgument,
    Policy,
    Rtt,
    Weights,
)
from coinfer.cli.tables import TableData, TableFormat, check_format, render
from coinfer.defaults import EDGE_CLASS, PLAN_DEVICE_CLASS
from coinfer.output import SCHEMA
from coinfer.units import parse_bandwidth, parse_seconds

if TYPE_CHECKING:
    from coinfer.apps.plan import PlanConfig


EdgeLoad = Annotated[
    float, typer.Option("--edge-load", help="Neurosurgeon's K: edge time multiplier.")
]
Objective = Annotated[str, typer.Option("--objective", help="latency, or the device's energy.")]
Radio = Annotated[str, typer.Option("--radio", help="Radio power model for energy: 3g, lte, wifi.")]
Orientation = Annotated[
    str,
    typer.Option(
        "--orientation",
        help="Edgent: device-first (the device runs the front) or edge-first (Edgent's own: "
        "the edge runs the first layers, the device the tail).",
    ),
]
ColdStart = Annotated[
    bool,
    typer.Option(
        "--cold-start",
        help="Count each side loading its part of the model (Edgent's loading regression).",
    ),
]


@command()
def plan(
    model: ModelArgument,
    policy: Policy = "neurosurgeon",
    device: Device = PLAN_DEVICE_CLASS,
    edge_class: EdgeClass = EDGE_CLASS,
    bandwidth: Bandwidth = "1mbps",
    rtt: Rtt = "0ms",
    edge_load: EdgeLoad = 1.0,
    objective: Objective = "latency",
    radio: Radio = "wifi",
    latency_req: LatencyReq = "500ms",
    orientation: Orientation = "device-first",
    cold_start: ColdStart = False,
    granularity: Granularity = "layer",
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    leaf: Leaf = None,
    bundle: Bundle = None,
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """Choose where to cut MODEL (and, with Edgent, how deep to run it) for a device, an edge
    and a link, with the predicted breakdown.

    Edgent needs a multi-exit model: branchy_alexnet runs with its shipped trained weights and
    their held-out per-exit accuracies.

    Examples:

    \\b
      coinfer plan vgg16 --device rpi3 --edge-class edge-pc -b 1mbps
      coinfer plan branchy_alexnet -p edgent --latency-req 200ms -b 500kbps
      coinfer plan resnet18 --device host/10 --edge-class host --objective energy --json
      coinfer plan alexnet --device host --bundle bundles/alexnet -b 10mbps   # ONNX Runtime fronts
    """
    from coinfer.apps.plan import PlanConfig
    from coinfer.apps.plan import plan as make_plan

    check_format(fmt)
    spec = model_spec(model, input_shape, model_arg, weights, leaf)
    config = PlanConfig(
        spec,
        policy,
        device,
        edge_class,
        parse_bandwidth(bandwidth or "1mbps", "--bandwidth"),
        parse_seconds(rtt or "0ms", "--rtt"),
        edge_load,
        objective,
        radio,
        parse_seconds(latency_req or "500ms", "--latency-req", positive=True),
        orientation,
        cold_start,
        granularity,
        bundle,
    )
    with user_errors(model), stage(f"partitioning {model}"):
        found = make_plan(config)
    if as_json:
        print_json({"schema": SCHEMA, "config": config_doc(config), **found.document()})
        return
    _table(found.document(), config, fmt)


def _table(doc: dict, config: PlanConfig, fmt: str | None) -> None:
    choice = doc["exit"]
    what = f"exit {choice} (accuracy {doc['accuracy']:.3f}), " if choice is not None else ""
    meets = doc["meets_requirement"]
    verdict = (
        ""
        if meets is None
        else (" meets" if meets else " MISSES") + (f" {1e3 * config.latency_req_s:g} ms")
    )
    energy = config.objective == "energy"
    columns = [
        "cut",
        "device runs to",
        "device ms",
        "upload ms",
        "edge ms",
        "reply ms",
        "total ms",
        *(["device mJ"] if energy else []),
    ]
    table = TableData(
        f"{config.model.name} on {config.device} + {config.edge} at "
        f"{config.bandwidth_bps / 1e6:g} Mbit/s, RTT {1e3 * config.rtt_s:g} ms: {config.policy} "
        f"({config.objective})",
        columns,
        caption=f"chosen: {what}cut {doc['cut']} ({doc['cut_name']}) of 0..{doc['num_cuts'] - 1}, "
        f"predicted {1e3 * doc['predicted_s']:,.1f} ms{verdict} (marked *)",
        left={"device runs to"},
    )
    for c in doc["cuts"]:
        ms = [
            f"{1e3 * c[k]:,.1f}"
            for k in ("device_s", "uplink_s", "edge_s", "downlink_s", "total_s")
        ]
        cell = [f"{1e3 * (c.get('energy_j') or 0.0):,.1f}"] if energy else []
        table.add(c["cut"], c["name"], *ms, *cell, marked=c["cut"] == doc["cut"])
    render(table, fmt)
