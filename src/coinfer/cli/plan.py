"""`coinfer plan` (where to cut, and with Edgent how deep to run, for a device, an edge and a
link) and `coinfer profile` (this host's per-layer regressions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coinfer import zoo
from coinfer.cli.app import app, err, out
from coinfer.cli.common import fail, parse_seconds
from coinfer.graph import PartitionError, Partitioning

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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Choose where to cut MODEL (and, with Edgent, how deep to run it) for a device, an edge
    and a link, with the predicted breakdown.

    Edgent needs a multi-exit model: branchy_alexnet runs with its shipped trained weights and
    their held-out per-exit accuracies.
    """
    from coinfer.latency.energy import COMPUTE_POWER_W, RADIOS, EnergyModel
    from coinfer.latency.link import parse_bandwidth
    from coinfer.policies.neurosurgeon import OBJECTIVES, Neurosurgeon
    from coinfer.policies.setup import device_setup, load_model

    if policy not in PLANNERS:
        raise fail(f"--policy must be one of {', '.join(PLANNERS)}, not {policy!r}")
    if objective not in OBJECTIVES:
        raise fail(f"--objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if radio not in RADIOS:
        raise fail(f"--radio must be one of {', '.join(RADIOS)}, not {radio!r}")
    exit_: int | None = None
    accuracy: float | None = None
    meets: bool | None = None
    try:
        bw, rtt_s = parse_bandwidth(bandwidth), parse_seconds(rtt)
        with err.status(f"partitioning {model} ...", spinner="dots"):
            setup = device_setup(load_model(model, granularity=granularity), device, edge)
        if policy == "edgent":
            chosen_edgent, part, costs = _plan_edgent(
                setup, bw, rtt_s, edge_load, parse_seconds(latency_req), orientation, cold_start
            )
            cut_index, exit_ = chosen_edgent.cut, chosen_edgent.exit
            accuracy, meets = chosen_edgent.accuracy, chosen_edgent.meets_requirement
            chosen_cost = chosen_edgent.cost
        else:
            part = setup.model.part
            energy = EnergyModel(COMPUTE_POWER_W.get(device.split("/")[0], 2.0), RADIOS[radio])
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
    except (PartitionError, zoo.ModelNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    cut = part.cuts[cut_index]
    doc = {
        "model": model,
        "policy": policy,
        "device": device,
        "edge": edge,
        "bandwidth_bps": bw,
        "objective": objective,
        "cut": cut_index,
        "cut_name": cut.name,
        "num_cuts": part.num_cuts,
        "exit": exit_,
        "predicted_s": chosen_cost.total_s,
        "accuracy": accuracy,
        "meets_requirement": meets,
        "breakdown": chosen_cost.breakdown(),
        "cuts": [c.breakdown() | {"cut": c.cut} for c in costs],
    }
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    what = f"exit {exit_} (accuracy {accuracy:.3f}), " if exit_ is not None else ""
    verdict = "" if meets is None else (" meets" if meets else " MISSES") + f" {latency_req}"
    table = Table(
        title=f"{model} on {device} + {edge} at {bandwidth}: {policy} ({objective})",
        caption=f"chosen: {what}cut {cut_index} ({cut.name}) of 0..{part.last}, "
        f"predicted {1e3 * chosen_cost.total_s:,.1f} ms{verdict}",
    )
    for col in (
        "cut",
        "device runs to",
        "device ms",
        "upload ms",
        "edge ms",
        "reply ms",
        "total ms",
    ):
        table.add_column(col, justify="right" if col != "device runs to" else "left")
    if objective == "energy":
        table.add_column("device mJ", justify="right")
    for c in costs:
        mark = "[bold green]" if c.cut == cut_index else ""
        row = [
            f"{mark}{c.cut}",
            f"{mark}{part.cuts[c.cut].name}",
            *(f"{1e3 * v:,.1f}" for v in (c.device_s, c.uplink_s, c.edge_s, c.downlink_s)),
            f"{mark}{1e3 * c.total_s:,.1f}",
        ]
        if objective == "energy":
            row.append(f"{1e3 * (c.energy_j or 0.0):,.1f}")
        table.add_row(*row)
    out.print(table)


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
        raise ValueError(
            f"Edgent needs a multi-exit model with known per-exit accuracy; "
            f"{setup.model.name!r} has one exit. Use branchy_alexnet (trained weights ship "
            "with coinfer)."
        )
    planner = EdgentPlanner(paths, setup.device, setup.edge, rtt_s, edge_load, orientation,
                            cold_start)  # fmt: skip
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
) -> None:
    """Fit per-layer-type latency regressions on this host and report their error.

    Profiles a sweep of synthetic layers, fits one linear model per layer kind, and reports
    held-out per-kind error and each zoo model's whole-network latency predicted vs measured.
    Use the saved file as a device class: coinfer plan MODEL --device fit:FILE.
    """
    from rich.progress import Progress

    from coinfer.latency.host import configure_host
    from coinfer.latency.regression import CHECK_MODELS, fit_host, synthetic_layers

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
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("profiling layers and models", total=total)
        record = fit_host(per_kind, models=check, on_step=lambda: progress.advance(task))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(record, indent=2) + "\n")
    report = {
        "file": str(out_file),
        "per_kind_test_mape": {k: m["test_mape"] for k, m in record["models"].items()},
        "per_kind_zoo_mape": {k: m.get("zoo_mape") for k, m in record["models"].items()},
        "whole_model": record["whole_model"],
        "whole_model_mape": record["whole_model_mape"],
    }
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    kinds = Table(
        title="per-layer regressions",
        caption="sweep: held-out synthetic layers (flushed caches); zoo: every zoo layer timed "
        "inside its model",
    )
    for col in ("kind", "features", "train n", "sweep MAPE", "zoo layers", "zoo MAPE"):
        kinds.add_column(col)
    for kind, m in record["models"].items():
        zoo_mape = f"{100 * m['zoo_mape']:.1f}%" if "zoo_mape" in m else "-"
        sweep_mape = f"{100 * m['test_mape']:.1f}%"
        kinds.add_row(kind, ", ".join(m["features"]), str(m["train_samples"]), sweep_mape,
                      str(m.get("zoo_layers", 0)), zoo_mape)  # fmt: skip
    out.print(kinds)
    whole = Table(
        title="whole models: predicted vs measured",
        caption=f"MAPE {100 * record['whole_model_mape']:.1f}%; saved to {out_file}",
    )
    for col in ("model", "predicted ms", "measured ms", "error"):
        whole.add_column(col, justify="right")
    for w in record["whole_model"]:
        whole.add_row(w["model"], f"{1e3 * w['predicted_s']:.2f}", f"{1e3 * w['measured_s']:.2f}",
                       f"{100 * w['error']:.1f}%")  # fmt: skip
    out.print(whole)
