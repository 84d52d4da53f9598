"""`coinfer simulate`: one simulated device, policies side by side on the same world."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from coinfer.cli.app import app, err
from coinfer.cli.common import (
    InputShapes,
    ModelArgs,
    Weights,
    fail,
    file_stem,
    model_spec,
    parse_seconds,
    print_json,
    progress_bars,
    stage,
    user_errors,
    writable,
)
from coinfer.cli.tables import TableData, TableFormat, check_format, from_rows, render
from coinfer.errors import BadValueError
from coinfer.output import SCHEMA
from coinfer.zoo.spec import ModelSpec


@app.command()
def simulate(
    model: Annotated[
        str, typer.Option("--model", "-m", help="A zoo name, torchvision:NAME or module:factory.")
    ] = "vgg16",
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "-p",
            help="all, or one or more (comma-separated) of oracle, best-fixed, forced-oracle, "
            "device-only, edge-only, neurosurgeon, neurosurgeon-static, linucb, mulinucb, "
            "mulinucb-scaled, mulinucb-discounted, mulinucb-link, fixed-K (K a cut).",
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
    latency_req: Annotated[
        str, typer.Option("--latency-req", help="Edgent's latency requirement (100ms).")
    ] = "100ms",
    channel: Annotated[
        str, typer.Option("--channel", help="Stopping: rayleigh or rician block fading.")
    ] = "rayleigh",
    snr_db: Annotated[float, typer.Option("--snr-db", help="Stopping: mean SNR (dB).")] = 10.0,
    time_weight: Annotated[
        float, typer.Option("--time-weight", min=0.0, help="Stopping: w in energy + w·time.")
    ] = 1.0,
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
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
    from coinfer.policies import registry
    from coinfer.report import ExperimentResult, write_result
    from coinfer.sim.compare import POLICIES
    from coinfer.systems.ans.simulate import plot_simulation
    from coinfer.systems.ans.simulate import simulate as run_simulation

    names = list(POLICIES) if policy == "all" else [p.strip() for p in policy.split(",") if p]
    spec = model_spec(model, input_shape, model_arg, weights)
    check_format(fmt)
    writable(out_dir, "--out", folder=True)
    with user_errors():
        kinds = {registry.check_world(n, "sim").kind for n in names}
        parse_seconds(latency_req, "--latency-req", positive=True)
        if channel not in ("rayleigh", "rician"):
            raise BadValueError(f"--channel must be rayleigh or rician, not {channel!r}")
    if len(kinds) > 1:
        raise fail(
            "give policies that decide the same thing (coinfer policies): cuts, "
            "exit+cut (Edgent) or stages (stopping), not a mix"
        )
    if kinds != {"cut"}:
        _simulate_other(
            kinds.pop(),
            spec,
            names,
            frames,
            seed,
            device,
            edge,
            trace,
            trace_scale,
            noise,
            latency_req,
            channel,
            snr_db,
            time_weight,
            as_json,
            fmt,
        )
        return
    if "oracle" not in names:
        names.insert(0, "oracle")
    chosen_scenario = scenario or ("trace" if trace else "stationary")
    if not 0 < discount <= 1:
        raise fail(f"--discount must be in (0, 1], got {discount}")
    with user_errors(model), progress_bars() as report:
        sim = run_simulation(
            spec,
            chosen_scenario,
            names,
            frames,
            seed,
            device,
            edge,
            trace,
            trace_scale,
            noise,
            discount,
            video=video,
            progress=report,
        )
    rows = sim.rows()
    config = {
        "model": spec.describe(),
        "policies": names,
        "scenario": sim.world.name,
        "frames": frames,
        "seed": seed,
        "device": device,
        "edge": edge,
        "trace": trace,
        "trace_scale": trace_scale,
        "noise": noise,
        "discount": discount,
        "video": str(video) if video else None,
    }
    if out_dir is not None:
        with user_errors(f"--out {out_dir}"):
            plot = plot_simulation(sim, out_dir / f"{file_stem(model)}_{sim.world.name}.png")
            notes = [
                sim.world.description,
                f"{frames} frames, seed {seed}, device {device}, edge {edge}",
            ]
            write_result(ExperimentResult("simulate", rows, notes, [plot], config=config), out_dir)
    if as_json:
        doc = {
            "schema": SCHEMA,
            "config": config,
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
        print_json(doc)
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
        f"{model} · {sim.world.name} · {frames} frames · seed {seed}",
        columns,
        caption=f"{sim.world.description}; key frames {sim.key_rate:.1%}",
        left={"policy"},
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
        table.add(*cells)
    render(table, fmt)
    if out_dir is not None:
        err.print(f"wrote {out_dir}/table.md, table.json and a plot")


def _simulate_other(
    kind: str,
    spec: ModelSpec,
    names: list[str],
    frames: int,
    seed: int,
    device: str,
    edge: str,
    trace: str | None,
    trace_scale: float,
    noise: float,
    latency_req: str,
    channel: str,
    snr_db: float,
    time_weight: float,
    as_json: bool,
    fmt: str | None,
) -> None:
    """Edgent's policies (exit and cut) or the stopping rules (stage by stage)."""
    from coinfer.systems.ans.simulate import simulate_edgent, simulate_stopping

    config: dict[str, Any] = {
        "model": spec.name,
        "frames": frames,
        "seed": seed,
        "device": device,
        "edge": edge,
    }
    with user_errors(spec.name), stage(f"simulating {', '.join(names)}"):
        if kind == "exit+cut":
            req = parse_seconds(latency_req, "--latency-req", positive=True)
            config |= {
                "trace": trace or "norway_bus_1",
                "trace_scale": trace_scale,
                "latency_req_s": req,
                "noise": noise,
            }
            rows = simulate_edgent(
                spec, names, frames, config["trace"], trace_scale, req, seed, device, edge, noise
            )
            columns = ["policy", "accuracy", "deadline_hit_rate", "mean_latency_s", "exits"]
        else:
            config |= {"channel": channel, "snr_db": snr_db, "time_weight": time_weight}
            rows = simulate_stopping(
                spec, names, frames, channel, snr_db, time_weight, seed, device, edge
            )
            columns = ["policy", "mean_cost", "ci95", "analytic_cost", "stops"]
    if as_json:
        print_json(
            {
                "schema": SCHEMA,
                "config": config | {"model": spec.describe(), "policies": names},
                **config,
                "rows": rows,
            }
        )
        return
    render(from_rows(" · ".join(f"{k} {v}" for k, v in config.items()), rows, columns), fmt)
