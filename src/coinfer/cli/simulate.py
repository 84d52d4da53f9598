"""`coinfer simulate`: one simulated device, policies side by side on the same world
(``apps.simulate``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from coinfer.cli.app import err
from coinfer.cli.common import (
    command,
    config_doc,
    file_stem,
    model_spec,
    names_of,
    print_json,
    progress_bars,
    stage,
    user_errors,
    writable,
)
from coinfer.cli.options import Channel as ChannelOption
from coinfer.cli.options import (
    Device,
    EdgeClass,
    Frames,
    InputShapes,
    Json,
    LatencyReq,
    Leaf,
    ModelArgs,
    Models,
    Out,
    Policy,
    Seed,
    SnrDb,
    TimeWeight,
    Trace,
    TraceScale,
    Video,
    Weights,
)
from coinfer.cli.tables import TableData, TableFormat, check_format, from_rows, render
from coinfer.defaults import DISCOUNT, EDGE_CLASS, NOISE, SIM_DEVICE_CLASS
from coinfer.output import SCHEMA
from coinfer.units import parse_seconds

if TYPE_CHECKING:
    from coinfer.apps.simulate import Simulated


Scenario = Annotated[
    str | None,
    typer.Option(
        "--scenario",
        "-s",
        help="stationary, network-change, edge-change, hsdpa (the shipped 3G traces), or trace "
        "(with --trace). Default: stationary, or trace when --trace is given.",
    ),
]
Noise = Annotated[
    float, typer.Option("--noise", min=0.0, help="Log-normal sd of each measured time.")
]
Discount = Annotated[
    float,
    typer.Option(
        "--discount", help="γ of mulinucb-discounted and -link, in (0, 1]; 1 is the paper."
    ),
]


@command()
def simulate(
    model: Models = None,
    policy: Policy = "all",
    scenario: Scenario = None,
    frames: Frames = 2000,
    seed: Seed = 0,
    trace: Trace = None,
    trace_scale: TraceScale = 1.0,
    device: Device = SIM_DEVICE_CLASS,
    edge_class: EdgeClass = EDGE_CLASS,
    noise: Noise = NOISE,
    discount: Discount = DISCOUNT,
    video: Video = None,
    out_dir: Out = None,
    latency_req: LatencyReq = "100ms",
    channel: ChannelOption = "rayleigh",
    snr_db: SnrDb = 10.0,
    time_weight: TimeWeight = 1.0,
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    leaf: Leaf = None,
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """Simulate learning where to cut MODEL, frame after frame, as the link and the edge change.

    Every policy runs on the same frames, link, edge and noise. Printed per policy: mean delay,
    mean delay on key frames, regret against the Oracle (the sum over frames of the chosen cut's
    true delay minus the best cut's) and the share of frames at the Oracle's cut. The Oracle
    always runs, as the reference. Edgent's policies (-p edgent,edgent-dynamic) report accuracy
    and deadline hit rate instead; the stopping rules (-p stopping,osla) each task's cost.

    Examples:

    \b
      coinfer simulate -m vgg16 -s hsdpa -p mulinucb,mulinucb-link
      coinfer simulate -m branchy_alexnet -p edgent,edgent-dynamic --device rpi3
        --trace norway_bus_1 --trace-scale 0.5 --latency-req 100ms
      coinfer simulate -m alexnet -p stopping,osla,edge-only,device-only --channel rayleigh -n 2000
    """
    from coinfer.apps.simulate import SimulateConfig, run_simulation
    from coinfer.report import ExperimentResult, write_result
    from coinfer.sim.compare import POLICIES
    from coinfer.systems.ans.simulate import plot_simulation

    spec = model_spec(model, input_shape, model_arg, weights, leaf)
    check_format(fmt)
    writable(out_dir, "--out", folder=True)
    req = parse_seconds(latency_req or "100ms", "--latency-req", positive=True)
    config = SimulateConfig(
        spec,
        tuple(names_of(policy, POLICIES)),
        scenario,
        frames,
        seed,
        trace,
        trace_scale,
        device,
        edge_class,
        noise,
        discount,
        video,
        req,
        channel or "rayleigh",
        snr_db,
        time_weight,
    )
    if config.kind != "cut":
        with user_errors(spec.name), stage(f"simulating {', '.join(config.policies)}"):
            done = run_simulation(config)
    else:
        with user_errors(spec.name), progress_bars() as report:
            done = run_simulation(config, report)
    if out_dir is not None and done.run is not None:
        plot = plot_simulation(done.run, out_dir / f"{file_stem(spec.name)}_{config.world}.png")
        notes = [
            done.run.world.description,
            f"{frames} frames, seed {seed}, device {device}, edge {edge_class}",
        ]
        write_result(
            ExperimentResult("simulate", done.rows, notes, [plot], config=config_doc(config)),
            out_dir,
        )
    if as_json:
        print_json(_document(done))
        return
    _table(done, fmt)
    if out_dir is not None and done.run is not None:
        err.print(f"wrote {out_dir}/table.md, table.json and a plot")


def _document(done: Simulated) -> dict:
    doc = {"schema": SCHEMA, "config": config_doc(done.config)}
    if done.run is None:
        c = done.config
        return doc | {"model": c.model.name, "frames": c.frames, "seed": c.seed, "rows": done.rows}
    keep = ("model", "scenario", "policy")
    return doc | {
        "model": done.config.model.name,
        "scenario": done.run.world.name,
        "frames": done.config.frames,
        "seed": done.config.seed,
        "key_frame_rate": done.run.key_rate,
        "policies": {r["policy"]: {k: v for k, v in r.items() if k not in keep} for r in done.rows},
    }


def _table(done: Simulated, fmt: str | None) -> None:
    c, sim = done.config, done.run
    if sim is None:
        columns = (
            ["policy", "accuracy", "deadline_hit_rate", "mean_latency_s", "exits"]
            if c.kind == "exit+cut"
            else ["policy", "mean_cost", "ci95", "analytic_cost", "stops"]
        )
        title = f"{c.model.name} · {c.kind} · {c.frames} frames · seed {c.seed}"
        render(from_rows(title, done.rows, columns), fmt)
        return
    columns = [
        "policy",
        "mean delay (s)",
        "key frames (s)",
        "regret (s)",
        "at Oracle's cut",
        "× Oracle",
        *(["after change (s)"] if sim.world.changes else []),
    ]
    table = TableData(
        f"{c.model.name} · {sim.world.name} · {c.frames} frames · seed {c.seed}",
        columns,
        caption=f"{sim.world.description}; key frames {sim.key_rate:.1%}",
        left={"policy"},
    )
    for r in done.rows:
        cells = [
            r["policy"],
            _number(r["mean_delay_s"]),
            _number(r["key_mean_delay_s"]),  # none when no frame was a key frame
            _number(r["regret_s"]),
            f"{r['oracle_match']:.1%}",
            f"{r['vs_oracle']:.3f}",
        ]
        if sim.world.changes:
            cells.append(_number(r["after_change_s"]))
        table.add(*cells)
    render(table, fmt)


def _number(value: float | None) -> str:
    """4 significant digits (a tiny model's 0.0009 s is not 0.001); '-' for none (NaN)."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"
