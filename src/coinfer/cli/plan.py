"""`coinfer plan` (where to cut, and with Edgent how deep to run, for a device, an edge and a
link) and `coinfer profile` (this host's per-layer regressions)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from coinfer import zoo
from coinfer.cli.app import app
from coinfer.cli.common import (
    InputShapes,
    ModelArgs,
    Weights,
    dumps,
    fail,
    model_spec,
    parse_seconds,
    print_json,
    progress_bars,
    stage,
    user_errors,
    writable,
)
from coinfer.cli.tables import TableData, TableFormat, check_format, render
from coinfer.errors import BadValueError
from coinfer.graph import GRANULARITIES, Partitioning
from coinfer.output import SCHEMA
from coinfer.units import check_positive

PLANNERS = ("neurosurgeon", "edgent")


@app.command()
def plan(
    model: Annotated[str, typer.Argument(help="A zoo name, torchvision:NAME or module:factory.")],
    policy: Annotated[
        str, typer.Option("--policy", "-p", help=f"Planner: {', '.join(PLANNERS)}.")
    ] = "neurosurgeon",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Device class: rpi3 or edge-pc (Edgent's published regressions), host "
            "(this machine, measured), host/N (N times slower).",
        ),
    ] = "rpi3",
    edge: Annotated[str, typer.Option("--edge", help="Edge class, as --device.")] = "edge-pc",
    bandwidth: Annotated[
        str, typer.Option("--bandwidth", "-b", help="Uplink bandwidth: 1mbps, 50kbps, ...")
    ] = "1mbps",
    rtt: Annotated[str, typer.Option("--rtt", help="Round-trip time: 20ms, 0.02s.")] = "0ms",
    edge_load: Annotated[
        float, typer.Option("--edge-load", help="Neurosurgeon's K: edge time multiplier.")
    ] = 1.0,
    objective: Annotated[
        str, typer.Option("--objective", help="latency, or the device's energy.")
    ] = "latency",
    radio: Annotated[
        str, typer.Option("--radio", help="Radio power model for energy: 3g, lte, wifi.")
    ] = "wifi",
    latency_req: Annotated[
        str,
        typer.Option("--latency-req", help="Edgent: the latency requirement (500ms, 0.5s)."),
    ] = "500ms",
    orientation: Annotated[
        str,
        typer.Option(
            "--orientation",
            help="Edgent: device-first (the device runs the front) or edge-first (Edgent's own: "
            "the edge runs the first layers, the device the tail).",
        ),
    ] = "device-first",
    cold_start: Annotated[
        bool,
        typer.Option(
            "--cold-start",
            help="Count each side loading its part of the model (Edgent's loading regression).",
        ),
    ] = False,
    granularity: Annotated[str, typer.Option("--granularity", "-g")] = "layer",
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    fmt: TableFormat = None,
) -> None:
    """Choose where to cut MODEL (and, with Edgent, how deep to run it) for a device, an edge
    and a link, with the predicted breakdown.

    Edgent needs a multi-exit model: branchy_alexnet runs with its shipped trained weights and
    their held-out per-exit accuracies.
    """
    from coinfer.assembly import device_setup, load_model
    from coinfer.latency.energy import COMPUTE_POWER_W, RADIOS, EnergyModel
    from coinfer.latency.link import parse_bandwidth
    from coinfer.policies.neurosurgeon import OBJECTIVES, Neurosurgeon

    check_format(fmt)
    if policy not in PLANNERS:
        raise fail(f"--policy must be one of {', '.join(PLANNERS)}, not {policy!r}")
    if objective not in OBJECTIVES:
        raise fail(f"--objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if radio not in RADIOS:
        raise fail(f"--radio must be one of {', '.join(RADIOS)}, not {radio!r}")
    if granularity not in GRANULARITIES:
        raise fail(f"--granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
    exit_: int | None = None
    accuracy: float | None = None
    meets: bool | None = None
    spec = model_spec(model, input_shape, model_arg, weights)
    rtt_s = parse_seconds(rtt, "--rtt")
    req_s = parse_seconds(latency_req, "--latency-req", positive=True)
    with user_errors():
        bw = parse_bandwidth(bandwidth, "--bandwidth")
        check_positive(edge_load, "--edge-load")
    with user_errors(model):
        with stage(f"partitioning {model}"):
            setup = device_setup(load_model(spec, granularity=granularity), device, edge)
        energy = EnergyModel(COMPUTE_POWER_W.get(device.split("/")[0], 2.0), RADIOS[radio])
        if policy == "edgent":
            chosen_edgent, part, costs = _plan_edgent(
                setup, bw, rtt_s, edge_load, req_s, orientation, cold_start
            )
            costs = [
                dataclasses.replace(c, energy_j=energy.device_joules(c.device_s, c.uplink_s, bw))
                for c in costs
            ]
            cut_index, exit_ = chosen_edgent.cut, chosen_edgent.exit
            accuracy, meets = chosen_edgent.accuracy, chosen_edgent.meets_requirement
            chosen_cost = next(c for c in costs if c.cut == cut_index)
        else:
            part = setup.model.part
            planner = Neurosurgeon(
                part,
                setup.device,
                setup.edge,
                bw,
                rtt_s,
                edge_load,
                objective,
                energy=energy,
                include_loading=cold_start,
            )
            chosen = planner.plan()
            cut_index, chosen_cost, costs = chosen.cut, chosen.cost, list(chosen.costs)
    cut = part.cuts[cut_index]
    doc = {
        "schema": SCHEMA,
        "config": {
            "model": spec.describe(),
            "policy": policy,
            "device": device,
            "edge": edge,
            "bandwidth": bandwidth,
            "rtt_s": rtt_s,
            "edge_load": edge_load,
            "objective": objective,
            "radio": radio,
            "granularity": granularity,
            "latency_req_s": req_s if policy == "edgent" else None,
            "orientation": orientation,
            "cold_start": cold_start,
        },
        "model": model,
        "policy": policy,
        "device": device,
        "edge": edge,
        "bandwidth_bps": bw,
        "objective": objective,
        "cut": cut_index,
        "cut_name": cut.name,
        "index": cut_index,
        "name": cut.name,
        "num_cuts": part.num_cuts,
        "exit": exit_,
        "predicted_s": chosen_cost.total_s,
        "accuracy": accuracy,
        "meets_requirement": meets,
        "breakdown": chosen_cost.breakdown(),
        "cuts": [
            c.breakdown() | {"cut": c.cut, "index": c.cut, "name": part.cuts[c.cut].name}
            for c in costs
        ],
    }
    if as_json:
        print_json(doc)
        return
    what = f"exit {exit_} (accuracy {accuracy:.3f}), " if exit_ is not None else ""
    verdict = "" if meets is None else (" meets" if meets else " MISSES") + f" {latency_req}"
    columns = [
        "cut",
        "device runs to",
        "device ms",
        "upload ms",
        "edge ms",
        "reply ms",
        "total ms",
        *(["device mJ"] if objective == "energy" else []),
    ]
    table = TableData(
        f"{model} on {device} + {edge} at {bandwidth}: {policy} ({objective})",
        columns,
        caption=f"chosen: {what}cut {cut_index} ({cut.name}) of 0..{part.last}, "
        f"predicted {1e3 * chosen_cost.total_s:,.1f} ms{verdict} (marked *)",
        left={"device runs to"},
    )
    for c in costs:
        ms = [
            f"{1e3 * v:,.1f}" for v in (c.device_s, c.uplink_s, c.edge_s, c.downlink_s, c.total_s)
        ]
        energy_cell = [f"{1e3 * (c.energy_j or 0.0):,.1f}"] if objective == "energy" else []
        table.add(c.cut, part.cuts[c.cut].name, *ms, *energy_cell, marked=c.cut == cut_index)
    render(table, fmt)


def _plan_edgent(
    setup: Any,
    bandwidth_bps: float,
    rtt_s: float,
    edge_load: float,
    latency_req_s: float,
    orientation: str,
    cold_start: bool,
) -> tuple[Any, Partitioning, list[Any]]:
    from coinfer.policies.edgent import EdgentPlanner

    paths = setup.model.exits
    if not paths:
        raise BadValueError(
            f"Edgent needs a multi-exit model with known per-exit accuracy; "
            f"{setup.model.name!r} has one exit. Use branchy_alexnet (trained weights ship "
            "with coinfer)."
        )
    planner = EdgentPlanner(
        paths, setup.device, setup.edge, rtt_s, edge_load, orientation, cold_start
    )
    choice = planner.plan(bandwidth_bps, latency_req_s)
    path = next(p for p in paths if p.exit == choice.exit)
    return choice, path.part, planner.costs(path, bandwidth_bps)


@app.command()
def profile(
    device: Annotated[
        str, typer.Option("--device", help="Only 'host' (this machine) can be profiled.")
    ] = "host",
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to save the fit and its measurements (JSON).")
    ] = Path("results/profile/host-fit.json"),
    per_kind: Annotated[
        int, typer.Option("--per-kind", help="Synthetic layers per layer kind (more: slower).")
    ] = 24,
    threads: Annotated[int, typer.Option("--threads", help="Intra-op threads.")] = 2,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Zoo models to check, comma-separated (default: all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    fmt: TableFormat = None,
) -> None:
    """Fit per-layer-type latency regressions on this host and report their error.

    Profiles a sweep of synthetic layers, fits one linear model per layer kind, and reports
    held-out per-kind error and each zoo model's whole-network latency predicted vs measured.
    Use the saved file as a device class: coinfer plan MODEL --device fit:FILE.
    """
    from coinfer.latency.host import configure_host
    from coinfer.latency.regression import CHECK_MODELS, fit_host, synthetic_layers

    check_format(fmt)
    writable(out_file, "--out")
    if device != "host":
        raise fail(f"only this host can be profiled (--device host), not {device!r}")
    if per_kind < 2:
        raise fail("--per-kind must be at least 2")
    check = tuple(m for m in (models.split(",") if models else CHECK_MODELS) if m)
    unknown = [m for m in check if m not in zoo.names()]
    if unknown:
        raise fail(f"--models: unknown {unknown}; zoo models are {', '.join(zoo.names())}")
    configure_host(threads)
    total = 2 * len(synthetic_layers(per_kind)) + len(check)
    if threads < 1:
        raise fail(f"--threads must be at least 1, got {threads}")
    done = [0]
    with progress_bars() as report_progress:

        def step() -> None:
            done[0] += 1
            report_progress("profiling layers and models", done[0], total)

        record = fit_host(per_kind, models=check, on_step=step)
    with user_errors(f"--out {out_file}"):
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(dumps(record) + "\n")
    report = {
        "schema": SCHEMA,
        "file": str(out_file),
        "per_kind_test_mape": {k: m["test_mape"] for k, m in record["models"].items()},
        "per_kind_zoo_mape": {k: m.get("zoo_mape") for k, m in record["models"].items()},
        "whole_model": record["whole_model"],
        "whole_model_mape": record["whole_model_mape"],
    }
    if as_json:
        print_json(report)
        return
    kinds = TableData(
        "per-layer regressions",
        ["kind", "features", "train n", "sweep MAPE", "zoo layers", "zoo MAPE"],
        caption="sweep: held-out synthetic layers (flushed caches); zoo: every zoo layer timed "
        "inside its model",
        left={"kind", "features"},
    )
    for kind, m in record["models"].items():
        zoo_mape = f"{100 * m['zoo_mape']:.1f}%" if "zoo_mape" in m else "-"
        sweep_mape = f"{100 * m['test_mape']:.1f}%"
        kinds.add(
            kind,
            ", ".join(m["features"]),
            m["train_samples"],
            sweep_mape,
            m.get("zoo_layers", 0),
            zoo_mape,
        )
    render(kinds, fmt)
    whole = TableData(
        "whole models: predicted vs measured",
        ["model", "predicted ms", "measured ms", "error"],
        caption=f"MAPE {100 * record['whole_model_mape']:.1f}%; saved to {out_file}",
        left={"model"},
    )
    for w in record["whole_model"]:
        whole.add(
            w["model"],
            f"{1e3 * w['predicted_s']:.2f}",
            f"{1e3 * w['measured_s']:.2f}",
            f"{100 * w['error']:.1f}%",
        )
    render(whole, fmt)
