"""``coinfer ...``: thin commands that parse, call the library and print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from coinfer import __version__, zoo
from coinfer.graph import GRANULARITIES, PartitionError, Partitioning, partition

app = typer.Typer(
    help="coinfer: device-edge collaborative DNN inference. Find where to cut a model, how deep "
    "to run it, and keep learning the best cut at run time.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
out = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


def _parse_shape(text: str) -> tuple[int, ...]:
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts if p.strip())
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise _fail(f"--input-shape {text!r} is not a shape; write it like 1,3,224,224")
    return shape


def _version(value: bool) -> None:
    if value:
        out.print(f"coinfer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """coinfer command line."""


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the zoo's models with their input shapes and sources."""
    entries = [zoo.entry(name) for name in zoo.names()]
    if as_json:
        rows = [
            {
                "name": e.name,
                "input_shapes": e.input_shapes(),
                "summary": e.summary,
                "source": e.source,
            }
            for e in entries
        ]
        sys.stdout.write(json.dumps({"models": rows}, indent=2) + "\n")
        return
    table = Table(
        title="coinfer model zoo", caption="also: torchvision:NAME, package.module:factory"
    )
    for col in ("model", "input", "what", "source"):
        table.add_column(col)
    for e in entries:
        shapes = " + ".join("x".join(map(str, s)) for s in e.input_shapes())
        table.add_row(e.name, shapes, e.summary, e.source)
    out.print(table)


def _cut_rows(part: Partitioning) -> list[dict[str, Any]]:
    return [
        {
            "index": c.index,
            "name": c.name,
            "boundary": list(c.boundary),
            "boundary_shapes": [list(s) for s in c.boundary_shapes],
            "boundary_bytes": c.boundary_bytes,
            "device_macs": c.device_macs,
            "edge_macs": c.edge_macs,
            "device_param_bytes": c.device_param_bytes,
            "edge_param_bytes": c.edge_param_bytes,
            "features": dict(c.features),
        }
        for c in part.cuts
    ]


@app.command()
def inspect(
    model: Annotated[
        str,
        typer.Argument(
            help="A zoo name (see `coinfer models`), torchvision:NAME, or package.module:factory."
        ),
    ],
    granularity: Annotated[
        str,
        typer.Option(
            "--granularity",
            "-g",
            help="layer: cut between top-level layers (the papers' partition points); "
            "node: cut after every traced op.",
        ),
    ] = "layer",
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            "-i",
            help="Input shape like 1,3,224,224; repeat once per forward argument. "
            "Defaults to the zoo model's own.",
        ),
    ] = None,
    leaf: Annotated[
        list[str] | None,
        typer.Option(
            "--leaf",
            help="Qualified name of a submodule to keep whole (for code torch.fx cannot trace).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print every cut of MODEL: what crosses it and how the work splits.

    MFLOPs count 2 FLOPs per multiply-accumulate. Cut 0 sends the raw input (all on the edge);
    the last cut runs everything on the device.
    """
    if granularity not in GRANULARITIES:
        raise _fail(f"--granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
    shapes = tuple(_parse_shape(s) for s in input_shape) if input_shape else None
    try:
        with err.status(f"tracing {model} ...", spinner="dots"):
            net = zoo.create(model)
            inputs = zoo.example_inputs(model, shapes=shapes)
            part = partition(net, inputs, granularity=granularity, leaf_modules=leaf or ())
    except (PartitionError, zoo.ModelNotFoundError, ValueError, TypeError) as exc:
        raise _fail(str(exc)) from exc

    rows = _cut_rows(part)
    if as_json:
        doc = {
            "model": model,
            "granularity": granularity,
            "input_shapes": [list(t.shape) for t in inputs],
            "num_ops": len(part.ops),
            "cuts": rows,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    total = 2 * (part.cuts[-1].device_macs) / 1e6
    table = Table(
        title=f"{model}: {len(part.cuts)} cuts ({granularity}), {len(part.ops)} ops, "
        f"{total:,.1f} MFLOPs",
        caption="device runs every layer up to and including 'device runs to'; "
        "the boundary is what it sends",
    )
    table.add_column("cut", justify="right", no_wrap=True)
    table.add_column("device runs to", overflow="fold")
    headers = (
        "boundary\ntensors",
        "boundary\nKB",
        "device\nMFLOPs",
        "edge\nMFLOPs",
        "device\nparams MB",
    )
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            str(r["index"]),
            r["name"],
            str(len(r["boundary"])),
            f"{r['boundary_bytes'] / 1024:,.1f}",
            f"{2 * r['device_macs'] / 1e6:,.1f}",
            f"{2 * r['edge_macs'] / 1e6:,.1f}",
            f"{r['device_param_bytes'] / 2**20:,.2f}",
        )
    out.print(table)


PLANNERS = ("neurosurgeon", "edgent")


def _parse_seconds(text: str) -> float:
    """``500ms``, ``0.5s`` or ``0.5`` (seconds)."""
    t = text.strip().lower()
    try:
        if t.endswith("ms"):
            return float(t[:-2]) / 1e3
        return float(t[:-1] if t.endswith("s") else t)
    except ValueError:
        raise _fail(f"cannot read a duration from {text!r}: write it like 500ms or 0.5s") from None


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
    from coinfer.latency.devices import resolve_device
    from coinfer.latency.energy import COMPUTE_POWER_W, RADIOS, EnergyModel
    from coinfer.latency.link import parse_bandwidth
    from coinfer.latency.profiler import profile_ops
    from coinfer.policies.neurosurgeon import OBJECTIVES, Neurosurgeon

    if policy not in PLANNERS:
        raise _fail(f"--policy must be one of {', '.join(PLANNERS)}, not {policy!r}")
    if objective not in OBJECTIVES:
        raise _fail(f"--objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if radio not in RADIOS:
        raise _fail(f"--radio must be one of {', '.join(RADIOS)}, not {radio!r}")
    try:
        bw = parse_bandwidth(bandwidth)
        with err.status(f"partitioning {model} ...", spinner="dots"):
            if policy == "edgent":
                chosen_edgent, part, costs = _plan_edgent(
                    model, device, edge, bw, _parse_seconds(rtt), edge_load,
                    _parse_seconds(latency_req), orientation, granularity, cold_start,
                )  # fmt: skip
                cut_index, exit_, accuracy = (
                    chosen_edgent.cut,
                    chosen_edgent.exit,
                    chosen_edgent.accuracy,
                )
                chosen_cost = chosen_edgent.cost
                meets: bool | None = chosen_edgent.meets_requirement
            else:
                net = zoo.create(model)
                inputs = zoo.example_inputs(model)
                part = partition(net, inputs, granularity=granularity)

                def host_profile() -> dict[str, float]:
                    return profile_ops(part, inputs)

                dev = resolve_device(device, host_profile)
                edg = resolve_device(edge, host_profile)
                energy = EnergyModel(COMPUTE_POWER_W.get(device.split("/")[0], 2.0), RADIOS[radio])
                planner = Neurosurgeon(
                    part, dev, edg, bw, _parse_seconds(rtt), edge_load, objective,
                    energy=energy, include_loading=cold_start,
                )  # fmt: skip
                chosen = planner.plan()
                cut_index, exit_, accuracy, meets = chosen.cut, None, None, None
                chosen_cost, costs = chosen.cost, list(chosen.costs)
    except (PartitionError, zoo.ModelNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
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
    model: str,
    device: str,
    edge: str,
    bandwidth_bps: float,
    rtt_s: float,
    edge_load: float,
    latency_req_s: float,
    orientation: str,
    granularity: str,
    cold_start: bool,
) -> tuple[Any, Partitioning, list[Any]]:
    from coinfer.latency.devices import resolve_device
    from coinfer.latency.profiler import profile_ops
    from coinfer.policies.edgent import EdgentPlanner, exit_paths
    from coinfer.zoo.training import load_trained

    if model != "branchy_alexnet":
        raise ValueError(
            f"Edgent needs a multi-exit model with known per-exit accuracy; {model!r} has one "
            f"exit. Use branchy_alexnet (trained weights ship with coinfer)."
        )
    net, record = load_trained()
    inputs = zoo.example_inputs(model)
    paths = exit_paths(net, inputs, record["exit_accuracy"], granularity)

    def host_profile() -> dict[str, float]:
        seconds: dict[str, float] = {}
        for p in paths:  # exits share their trunk layers, and those share names
            seconds.update(profile_ops(p.part, inputs))
        return seconds

    dev = resolve_device(device, host_profile)
    edg = resolve_device(edge, host_profile)
    planner = EdgentPlanner(paths, dev, edg, rtt_s, edge_load, orientation, cold_start)
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
        raise _fail(f"only this host can be profiled (--device host), not {device!r}")
    if per_kind < 2:
        raise _fail("--per-kind must be at least 2")
    check = tuple(m for m in (models.split(",") if models else CHECK_MODELS) if m)
    unknown = [m for m in check if m not in zoo.names()]
    if unknown:
        raise _fail(f"--models: unknown {unknown}; zoo models are {', '.join(zoo.names())}")
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


@contextmanager
def _progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display on stderr; yields ``report(what, done, total)``, one bar per
    ``what``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done)

        yield report


@app.command()
def simulate(
    model: Annotated[str, typer.Option("--model", "-m", help="A zoo model.")] = "vgg16",
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "-p",
            help="all, or one or more (comma-separated) of oracle, best-fixed, forced-oracle, "
            "device-only, edge-only, neurosurgeon, neurosurgeon-static, linucb, mulinucb, "
            "mulinucb-discounted, mulinucb-link, fixed-K (K a cut).",
        ),
    ] = "all",
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            "-s",
            help="stationary, network-change, edge-change, hsdpa (the shipped 3G traces), or "
            "trace (with --trace). Default: stationary, or trace when --trace is given.",
        ),
    ] = None,
    frames: Annotated[
        int, typer.Option("--frames", "-n", min=3, help="Frames to simulate.")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the video, noise and links.")] = 0,
    trace: Annotated[
        str | None,
        typer.Option(
            "--trace",
            help="A bandwidth trace: a shipped name (norway_bus_1 ...) or a file (HSDPA "
            "'time<TAB>Mbit/s', or CSV with time_s and mbps columns).",
        ),
    ] = None,
    trace_scale: Annotated[
        float, typer.Option("--trace-scale", min=0.0001, help="Multiply every throughput.")
    ] = 1.0,
    device: Annotated[
        str, typer.Option("--device", help="Device class (see coinfer plan --help).")
    ] = "edge-pc/8",
    edge: Annotated[str, typer.Option("--edge", help="Edge class.")] = "edge-pc",
    noise: Annotated[
        float, typer.Option("--noise", min=0.0, help="Log-normal sd of each measured time.")
    ] = 0.1,
    discount: Annotated[
        float,
        typer.Option(
            "--discount", help="γ of mulinucb-discounted and -link, in (0, 1]; 1 is the paper."
        ),
    ] = 0.99,
    video: Annotated[
        Path | None,
        typer.Option(
            "--video", help="Key frames from this video file instead of a synthetic scene."
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write table.md, table.json and a PNG (delay, regret, cuts) here."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Simulate learning where to cut MODEL, frame after frame, as the link and the edge change.

    Every policy runs on the same frames, link, edge and noise. Printed per policy: mean delay,
    mean delay on key frames, regret against the Oracle (the sum over frames of the chosen cut's
    true delay minus the best cut's) and the share of frames at the Oracle's cut. The Oracle
    always runs, as the reference.
    """
    from coinfer.experiments.ans import plot_simulation
    from coinfer.experiments.ans import simulate as run_simulation
    from coinfer.experiments.report import ExperimentResult, write_result
    from coinfer.sim.roster import POLICIES

    names = list(POLICIES) if policy == "all" else [p.strip() for p in policy.split(",") if p]
    if "oracle" not in names:
        names.insert(0, "oracle")
    chosen_scenario = scenario or ("trace" if trace else "stationary")
    if not 0 < discount <= 1:
        raise _fail(f"--discount must be in (0, 1], got {discount}")
    try:
        with _progress_bars() as report:
            sim = run_simulation(
                model, chosen_scenario, names, frames, seed, device, edge, trace, trace_scale,
                noise, discount, video=video, progress=report,
            )  # fmt: skip
    except (PartitionError, zoo.ModelNotFoundError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    rows = sim.rows()
    if out_dir is not None:
        plot = plot_simulation(sim, out_dir / f"{model}_{sim.world.name}.png")
        notes = [
            sim.world.description,
            f"{frames} frames, seed {seed}, device {device}, edge {edge}",
        ]
        write_result(ExperimentResult("simulate", rows, notes, [plot]), out_dir)
    if as_json:
        doc = {
            "model": model,
            "scenario": sim.world.name,
            "frames": frames,
            "seed": seed,
            "key_frame_rate": sim.key_rate,
            "policies": {
                r["policy"]: {
                    k: v for k, v in r.items() if k not in ("model", "scenario", "policy")
                }
                for r in rows
            },
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    table = Table(title=f"{model} · {sim.world.name} · {frames} frames · seed {seed}",
                  caption=f"{sim.world.description}; key frames {sim.key_rate:.1%}")  # fmt: skip
    for col in ("policy", "mean delay (s)", "key frames (s)", "regret (s)", "at Oracle's cut",
                "× Oracle", *(["after change (s)"] if sim.world.changes else [])):  # fmt: skip
        table.add_column(
            col, justify="left" if col == "policy" else "right", no_wrap=col == "policy"
        )
    for r in rows:
        cells = [
            r["policy"],
            f"{r['mean_delay_s']:.3f}",
            f"{r['key_mean_delay_s']:.3f}",
            f"{r['regret_s']:.1f}",
            f"{r['oracle_match']:.1%}",
            f"{r['vs_oracle']:.3f}",
        ]
        if sim.world.changes:
            cells.append(f"{r['after_change_s']:.3f}")
        table.add_row(*cells)
    out.print(table)
    if out_dir is not None:
        err.print(f"wrote {out_dir}/table.md, table.json and a plot")


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
) -> None:
    """Many devices sharing one edge (CANS): every policy on the same fleet, side by side."""
    from coinfer.experiments.cans import DEVICE_TYPES, simulate_fleet
    from coinfer.experiments.report import cell_text
    from coinfer.latency.link import parse_bandwidth
    from coinfer.sim.fleet_roster import FLEET_POLICIES, Federation

    names = list(FLEET_POLICIES) if policy == "all" else [p.strip() for p in policy.split(",")]
    if learner not in ("paper", "link"):
        raise _fail(f"unknown learner {learner!r}: choose paper or link")
    if types > len(DEVICE_TYPES):
        raise _fail(f"--types is at most {len(DEVICE_TYPES)} ({', '.join(DEVICE_TYPES)})")
    try:
        uplink = parse_bandwidth(shared_uplink) if shared_uplink else None
        fed = Federation(warm_weight, growth, period, link_feature=learner == "link")
        with _progress_bars() as report:
            rows = simulate_fleet(devices, types, names, frames, seed, fed, link_scale, uplink,
                                  experience, report)  # fmt: skip
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps({"rows": rows}, indent=2) + "\n")
        return
    columns = ["policy", "mean_latency_s", "first_100_s", "vs_noncoop", "regret_s",
               "offload_share", "messages", "kbytes"]  # fmt: skip
    table = Table(title=f"{devices} devices, {types} type(s), {frames} frames, learner {learner}")
    for col in columns:
        table.add_column(col, no_wrap=col == "policy", overflow="fold")
    for row in rows:
        table.add_row(*(cell_text(row.get(c)) for c in columns))
    out.print(table)


@app.command()
def serve(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind (loopback by default; any other needs --token, or --insecure).",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="0 picks a free port.")
    ] = 8765,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="A zoo name or module:factory to serve (repeatable)."),
    ] = None,
    input_shape: Annotated[
        str | None, typer.Option("--input-shape", help="Input shape of module:factory models.")
    ] = None,
    slowdown: Annotated[
        float,
        typer.Option(
            "--slowdown",
            min=1.0,
            max=1000.0,
            help="Emulate an edge this many times slower (1 to 1000).",
        ),
    ] = 1.0,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Require this auth token (visible in ps: prefer --token-file or COINFER_TOKEN).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Read the auth token from this file.")
    ] = None,
    batch_window_ms: Annotated[
        float, typer.Option("--batch-window", min=0.0, help="Micro-batch window (ms); 0 = off.")
    ] = 0.0,
    read_timeout: Annotated[
        float, typer.Option("--read-timeout", min=0.01, help="Seconds a whole message may take.")
    ] = 10.0,
    idle_timeout: Annotated[
        float,
        typer.Option("--idle-timeout", min=0.01, help="Close a connection idle this many seconds."),
    ] = 60.0,
    write_timeout: Annotated[
        float,
        typer.Option(
            "--write-timeout",
            min=0.01,
            help="Drop a peer that has not taken a reply in this many seconds.",
        ),
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="Connections served at once.")
    ] = 512,
    max_buffer_mb: Annotated[
        float,
        typer.Option(
            "--max-buffer-mb",
            min=1.0,
            help="Memory budget (MiB) for everything peers make the server hold.",
        ),
    ] = 1024.0,
    allow_control: Annotated[
        bool,
        typer.Option(
            "--allow-control", help="Take CONTROL (run-time slowdown) even without a token."
        ),
    ] = False,
    no_control: Annotated[
        bool, typer.Option("--no-control", help="Refuse run-time slowdown changes (CONTROL).")
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve TLS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Serve a non-loopback --host without a token anyway."),
    ] = False,
) -> None:
    """Run the edge server: back halves for any device that asks, until SIGINT/SIGTERM.

    [bold]Examples[/]

      coinfer serve -m vgg16 --port 8765

      COINFER_TOKEN=s3cret coinfer serve -m alexnet --host 0.0.0.0 --tls-cert e.pem --tls-key e.key

    With a token, every request but PING must carry it, and CONTROL is taken only from peers
    that have it; without one, CONTROL is off unless --allow-control. Limits and what they
    defend: docs/security.md.
    """
    import asyncio
    import logging

    from coinfer.latency.host import configure_host
    from coinfer.runtime.live import serve_until_signalled
    from coinfer.runtime.security import check_exposure, resolve_token
    from coinfer.runtime.server import EdgeServer, ServerOptions
    from coinfer.runtime.store import ModelStore

    configure_host()  # steady timings: fixed threads, an allocator that keeps its memory
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("coinfer serve: %(message)s"))
    logging.getLogger("coinfer").addHandler(handler)
    if allow_control and no_control:
        raise _fail("give --allow-control or --no-control, not both")
    models = model or ["vgg16"]
    try:
        secret = resolve_token(token, token_file)
        shapes = [_parse_shape(input_shape)] if input_shape else None
        options = ServerOptions(
            slowdown,
            secret,
            read_timeout_s=read_timeout,
            idle_timeout_s=idle_timeout,
            write_timeout_s=write_timeout,
            batch_window_s=batch_window_ms / 1000,
            allow_control=False if no_control else (True if allow_control else None),
            max_buffer_bytes=int(max_buffer_mb * 1024 * 1024),
            max_connections=max_connections,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure=insecure,
        )  # fmt: skip; checked before what may be minutes of model loading
        check_exposure(host, secret is not None, insecure)
        err.print(f"loading {', '.join(models)} ...")
        store = ModelStore(models, shapes)
        server = EdgeServer(store, options)
    except (ValueError, KeyError) as exc:
        raise _fail(str(exc)) from exc

    def announce(address: tuple[str, int]) -> None:
        for notice in server.notices:
            err.print(f"warning: {notice}", markup=False)
        scheme = "TLS" if server.tls else "TCP"
        guard = "token required" if server.token_required else "no token"
        err.print(f"serving {', '.join(models)} on {address[0]}:{address[1]} ({scheme}, {guard}; "
                  f"Ctrl-C stops)", markup=False)  # fmt: skip

    try:
        asyncio.run(serve_until_signalled(server, host, port, announce))
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    out.print_json(data=server.stats.summary())


@app.command()
def run(
    edge: Annotated[
        str, typer.Option("--edge", help="The edge server, HOST:PORT.")
    ] = "127.0.0.1:8765",
    model: Annotated[
        str, typer.Option("--model", "-m", help="A zoo model the edge serves.")
    ] = "vgg16",
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "-p",
            help="mulinucb-link, mulinucb, mulinucb-discounted, "
            "linucb, neurosurgeon, edge-only, device-only or fixed-K.",
        ),
    ] = "mulinucb-link",
    frames: Annotated[int, typer.Option("--frames", "-n", min=1, help="Frames to run.")] = 100,
    trace: Annotated[
        str | None,
        typer.Option("--trace", help="Shape the link by a trace (shipped name or file)."),
    ] = None,
    trace_scale: Annotated[
        float, typer.Option("--trace-scale", min=0.0001, help="Multiply the trace's throughput.")
    ] = 1.0,
    bandwidth: Annotated[
        str | None, typer.Option("--bandwidth", "-b", help="A constant link instead (5mbps).")
    ] = None,
    rtt: Annotated[str, typer.Option("--rtt", help="Round-trip time of the shaped link.")] = "20ms",
    device: Annotated[
        str, typer.Option("--device", help="Emulated device class (host = as fast as this host).")
    ] = "host",
    edge_class: Annotated[
        str, typer.Option("--edge-class", help="The edge model Neurosurgeon plans with.")
    ] = "edge-pc",
    codec: Annotated[str, typer.Option("--codec", help="none, lz4 or zstd.")] = "none",
    quant: Annotated[str, typer.Option("--quant", help="none, fp16 or int8.")] = "none",
    token: Annotated[
        str | None,
        typer.Option("--token", help="The server's auth token (or --token-file, COINFER_TOKEN)."),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Read the auth token from this file.")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", help="Connect with TLS, trusting the CA in this PEM file."),
    ] = None,
    tls: Annotated[
        bool, typer.Option("--tls", help="Connect with TLS, trusting the system's CAs.")
    ] = False,
    edge_timeout: Annotated[
        float,
        typer.Option(
            "--edge-timeout",
            min=0.01,
            help="Seconds from the end of an upload to the whole reply before the "
            "device finishes the frame itself.",
        ),
    ] = 5.0,
    log: Annotated[
        Path | None, typer.Option("--log", help="Write one JSON line per frame.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the synthetic video.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """The device: run frames of a synthetic video, offloading as the policy decides.

    [bold]Examples[/]

      coinfer run --edge 127.0.0.1:8765 -m vgg16 -p mulinucb-link -n 200 --trace norway_bus_1

      COINFER_TOKEN=s3cret coinfer run --edge edge.lan:8765 -m alexnet --tls-ca ca.pem --json

    Every reply is checked (kind, request, the model's output shapes and dtypes, a plausible
    edge time); a frame whose reply fails, or that the edge does not finish in time, is
    finished on the device: no frame is lost.
    """
    import asyncio

    from coinfer.data import trace_path
    from coinfer.experiments.report import cell_text
    from coinfer.latency.devices import resolve_device
    from coinfer.latency.host import configure_host, settle_heap
    from coinfer.latency.link import Link, TraceBandwidth, parse_bandwidth
    from coinfer.latency.profiler import profile_ops
    from coinfer.runtime.client import DeviceClient, emulated_front_seconds, summary, write_log
    from coinfer.runtime.live import load_model, make_live_policy, parse_address, video_inputs
    from coinfer.runtime.security import device_tls, resolve_token

    configure_host()
    try:
        address = parse_address(edge)
        secret = resolve_token(token, token_file)
        context = device_tls(tls_ca) if tls or tls_ca is not None else None
        live = load_model(model)
        rtt_s = _parse_seconds(rtt)
        if bandwidth is not None and trace is not None:
            raise ValueError("give --trace or --bandwidth, not both")
        if trace is not None:
            uplink = TraceBandwidth.from_file(trace_path(trace), scale=trace_scale)
            link = Link(uplink, rtt_s)
        else:
            link = Link.constant(parse_bandwidth(bandwidth or "1gbps"), rtt_s)
        dev = resolve_device(device, lambda: profile_ops(live.part, live.inputs))
        edg = resolve_device(edge_class, lambda: profile_ops(live.part, live.inputs))
        front = emulated_front_seconds(live.part, dev, edg)
        chosen = make_live_policy(policy, live.part, front, dev, edg, link)
        inputs, weights = video_inputs(live, frames, seed)
        client = DeviceClient(model, live.part, front, address, link, codec, quant, secret,
                              edge_timeout, tls=context)  # fmt: skip
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    settle_heap()  # model and frames are ready: collections need not walk them again
    with _progress_bars() as report:
        records = asyncio.run(
            client.run(
                chosen, inputs, weights, on_frame=lambda r: report("frames", r.frame + 1, frames)
            )
        )
    if log is not None:
        write_log(records, log)
    result = {"model": model, "policy": policy, "edge": edge, **summary(records)}
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, allow_nan=False) + "\n")
        return
    table = Table(title=f"{model} via {edge}, policy {policy}")
    for key in ("frames", "offloaded", "fallbacks", "mean_latency_s", "p95_latency_s"):
        table.add_column(key)
    table.add_row(
        *(
            cell_text(result[k])
            for k in ("frames", "offloaded", "fallbacks", "mean_latency_s", "p95_latency_s")
        )
    )
    out.print(table)
    if result["errors"]:
        err.print(f"edge errors (frames finished on the device): {'; '.join(result['errors'])}")


@app.command()
def demo(
    duration: Annotated[
        float, typer.Option("--duration", min=2.0, help="Seconds to stream (slowdown at half).")
    ] = 50.0,
    model: Annotated[str, typer.Option("--model", "-m", help="A zoo model.")] = "alexnet",
    device: Annotated[str, typer.Option("--device", help="Emulated device class.")] = "host/30",
    slowdown: Annotated[
        float, typer.Option("--slowdown", min=1.0, help="How much slower the edge gets, halfway.")
    ] = 30.0,
    out_dir: Annotated[Path, typer.Option("--out", help="Where the PNG and table go.")] = Path(
        "results/demo"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the result rows as JSON.")] = False,
) -> None:
    """Edge server + devices on loopback: live μLinUCB vs edge-only and device-only over a real
    3G trace (sped up 8x) with the edge slowing down halfway. About a minute."""
    from rich.live import Live

    from coinfer.experiments.report import cell_text, markdown_table
    from coinfer.runtime.client import FrameRecord
    from coinfer.runtime.demo import POLICIES, DemoConfig, run_demo

    config = DemoConfig(model=model, device=device, duration_s=duration, slowdown=slowdown)
    latest: dict[str, list[FrameRecord]] = {name: [] for name in POLICIES}

    def render() -> Table:
        table = Table(
            title=f"coinfer demo: {model} on a {device} device, edge on loopback "
            f"({duration:g} s; edge {slowdown:g}x slower from {duration / 2:g} s)"
        )
        for col in ("policy", "frames", "mean latency s", "last cut", "offloaded", "fallbacks"):
            table.add_column(col)
        for name, records in latest.items():
            mean = sum(r.total_s for r in records) / len(records) if records else float("nan")
            table.add_row(
                name,
                str(len(records)),
                cell_text(mean),
                str(records[-1].cut) if records else "",
                str(sum(r.offloaded for r in records)),
                str(sum(r.fallback for r in records)),
            )
        return table

    err.print("starting 3 edge servers and 3 devices on loopback ...")
    with Live(render(), console=err, refresh_per_second=4, transient=as_json) as live_view:

        def on_frame(name: str, record: FrameRecord) -> None:
            latest[name].append(record)
            live_view.update(render())

        try:
            run = run_demo(config, on_frame)
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    rows = run.rows()
    out_dir.mkdir(parents=True, exist_ok=True)
    png = run.plot(out_dir / "latency.png")
    (out_dir / "table.md").write_text(markdown_table(rows))
    (out_dir / "table.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps({"rows": rows}, indent=2) + "\n")
        return
    learner = next(r for r in rows if r["policy"] == "mulinucb-link")
    for row in rows:
        if row is not learner:
            ratio = learner["mean_latency_s"] / row["mean_latency_s"]
            out.print(
                f"μLinUCB mean latency {learner['mean_latency_s']:.3f} s = {ratio:.2f} x "
                f"{row['policy']} ({row['mean_latency_s']:.3f} s)"
            )
    err.print(f"wrote {png}, {out_dir / 'table.md'} and table.json")


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
    from coinfer.experiments.report import cell_text

    if name not in EXPERIMENTS:
        raise _fail(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    if engine not in ENGINES:
        raise _fail(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if engine == "ray" and not ray_available():
        raise _fail(
            "--engine ray needs Ray: pip install 'coinfer[distributed]' (or --engine local)"
        )
    err.print(f"running experiment {name}{' (quick)' if quick else ''} ...")
    try:
        with _progress_bars() as report:
            result = run_experiment(name, out_dir, quick, progress=report, engine=engine)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
