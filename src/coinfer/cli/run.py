"""`coinfer run`: the device side against a real edge, any policy that runs live — on a real
network as it is, or over a link shaped by a trace or a bandwidth."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from coinfer.cli.app import app, err
from coinfer.cli.common import (
    InputShapes,
    ModelArgs,
    Weights,
    fail,
    model_spec,
    parse_seconds,
    print_json,
    progress_bars,
    stage,
    user_errors,
    writable,
)
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.errors import BadValueError
from coinfer.output import SCHEMA

STRICT_EXIT = 3  # --strict: the run finished, but some frame fell back to the device


@app.command()
def run(
    edge: Annotated[
        str, typer.Option("--edge", help="The edge server, HOST:PORT.")
    ] = "127.0.0.1:8765",
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="The model the edge serves: a zoo name or module:factory."
        ),
    ] = "vgg16",
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "-p",
            help="A policy that runs live (coinfer policies): mulinucb-link, neurosurgeon, "
            "edgent, edgent-dynamic, stopping, osla, edge-only, fixed-K ...",
        ),
    ] = "mulinucb-link",
    frames: Annotated[
        int, typer.Option("--frames", "-n", min=1, help="Frames (tasks, for stopping) to run.")
    ] = 100,
    trace: Annotated[
        str | None,
        typer.Option(
            "--trace",
            help="Shape the link by a trace (shipped name or file). Without --trace, "
            "--bandwidth or --rtt the network is used as it is.",
        ),
    ] = None,
    trace_scale: Annotated[
        float, typer.Option("--trace-scale", min=0.0001, help="Multiply the trace's throughput.")
    ] = 1.0,
    bandwidth: Annotated[
        str | None,
        typer.Option("--bandwidth", "-b", help="Shape a constant link (5mbps, 10M, 2MB/s)."),
    ] = None,
    rtt: Annotated[
        str | None,
        typer.Option("--rtt", help="Add this round-trip time to the shaped link (20ms)."),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="host: this machine as it is (a real device). A class (rpi3, edge-pc/8, "
            "fit:FILE) emulates a slower device by padding each front to its predicted time.",
        ),
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
        Path | None, typer.Option("--log", help="Write one JSON line per frame (timings only).")
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write one JSON line per frame: timings, the input's source and each output "
            "(a classifier's top 5).",
        ),
    ] = None,
    video: Annotated[
        Path | None, typer.Option("--video", help="Frames from this video file (image models).")
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Frames from the images in this folder, in name order."),
    ] = None,
    camera: Annotated[
        str | None,
        typer.Option("--camera", help="Frames from a camera, e.g. /dev/video0 (PyAV, V4L2)."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help=f"Exit {STRICT_EXIT} if any frame fell back to the device."),
    ] = False,
    no_preflight: Annotated[
        bool,
        typer.Option(
            "--no-preflight",
            help="Start without checking the edge first (every frame then falls back while it "
            "is down).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the frames and the channel.")] = 0,
    latency_req: Annotated[
        str | None, typer.Option("--latency-req", help="Edgent's latency requirement (100ms).")
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option(
            "--channel",
            help="rayleigh or rician block fading: run stage by stage (the stopping rules; "
            "edge-only, device-only, fixed-K as their baselines). Default for stopping rules: "
            "rayleigh.",
        ),
    ] = None,
    snr_db: Annotated[float, typer.Option("--snr-db", help="Stopping: mean SNR (dB).")] = 10.0,
    time_weight: Annotated[
        float, typer.Option("--time-weight", min=0.0, help="Stopping: w in energy + w·time.")
    ] = 1.0,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="A federated policy's group on the edge (devices of one type share one; the "
            "edge runs coinfer serve --federation).",
        ),
    ] = None,
    experience: Annotated[
        Path | None,
        typer.Option(
            "--experience",
            help="Offline experience (coinfer-experience/1 JSON) a warm-started federated "
            "policy (fedlinucb-dw, -w) adds to its group when it joins.",
        ),
    ] = None,
    learner: Annotated[
        str,
        typer.Option(
            "--learner",
            help="Federated policies: paper (DESIGN's μLinUCB, 7 features) or link (+ link).",
        ),
    ] = "link",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    fmt: TableFormat = None,
) -> None:
    """The device: run frames, offloading as the policy decides, against a real edge.

    Examples:

    \b
      coinfer run --edge edge.lan:8765 -m mynet:build --weights mynet.pt --images photos/
        --out results.jsonl --strict
      coinfer run --edge 127.0.0.1:8765 -m vgg16 -p mulinucb-link -n 200 --trace norway_bus_1
      coinfer run -m branchy_alexnet -p edgent-dynamic --latency-req 100ms --device rpi3
        --trace norway_bus_1 --trace-scale 0.5
      coinfer run -m alexnet -p stopping --channel rayleigh --snr-db 10 --time-weight 1
        --device edge-pc/8
      COINFER_TOKEN=s3cret coinfer run --edge edge.lan:8765 -m alexnet --tls-ca ca.pem --json
      coinfer run --edge edge.lan:8765 -m alexnet -p fedlinucb-dw --group pi4-alexnet
        --experience pi4.json --learner paper

    The edge must serve the same model (coinfer serve -m MODEL, the same --weights,
    --model-arg and --input-shape): a preflight checks that it is reachable, takes the token and
    holds the very same weights (fingerprint), and measures the RTT and upload rate the policy
    starts from; any problem is one line and exit 2. Inputs: --video, --images or --camera for
    an image model; else the held-out digits for branchy_alexnet (every answer checked against
    its label), a synthetic video for other image models, seeded tensors of the declared shapes
    for any other model. Every reply is checked (kind, request, the model's output shapes and
    dtypes, a plausible edge time); a frame whose reply fails, or that the edge does not finish
    in time, is finished on the device: no frame is lost (--strict makes that exit 3).
    """

    from coinfer.apps.live import (
        Cooperation,
        link_history_bps,
        preflight_edge,
        run_frames,
        run_stages,
    )
    from coinfer.assembly import device_setup, load_model
    from coinfer.data import trace_path
    from coinfer.device.client import ClientOptions
    from coinfer.device.endpoint import Endpoint
    from coinfer.device.inputs import Frames, frames_for
    from coinfer.device.preflight import PreflightError
    from coinfer.device.records import write_log
    from coinfer.device.results import ResultWriter
    from coinfer.latency.host import configure_host
    from coinfer.latency.link import Link, TraceBandwidth, parse_bandwidth
    from coinfer.policies import registry
    from coinfer.policies.fedlinucb import Federation

    configure_host()
    check_format(fmt)
    writable(out_file, "--out")
    writable(log, "--log")
    spec = model_spec(model, input_shape, model_arg, weights)
    req = parse_seconds(latency_req, "--latency-req", positive=True) if latency_req else None
    rtt_s = parse_seconds(rtt, "--rtt") if rtt is not None else None
    if sum(x is not None for x in (video, images, camera)) > 1:
        raise fail("give one of --video, --images and --camera")
    with user_errors():
        entry = registry.check_world(policy, "live")
        connection = Endpoint.from_options(edge, token, token_file, tls, tls_ca)
        options = ClientOptions(codec, quant, edge_timeout)
        context = connection.tls
        if channel is not None:
            _check_choice("--channel", channel, ("rayleigh", "rician"))
        if bandwidth is not None and trace is not None:
            raise BadValueError("give --trace or --bandwidth, not both")
        link: Link | None = None
        if trace is not None:
            link = Link(
                TraceBandwidth.from_file(trace_path(trace), scale=trace_scale), rtt_s or 0.0
            )
        elif bandwidth is not None:
            link = Link.constant(parse_bandwidth(bandwidth, "--bandwidth"), rtt_s or 0.0)
        elif rtt_s is not None:
            link = Link.constant(1e12, rtt_s)  # an added delay, no rate limit
        _check_choice("--learner", learner, ("paper", "link"))
        cooperation = Cooperation(group, None, Federation(link_feature=learner == "link"))
    if experience is not None:
        from coinfer.policies.experience import Experience

        with user_errors(f"--experience {experience}"):
            cooperation = Cooperation(group, Experience.load(experience), cooperation.federation)
    stagewise = entry.kind == "stage" or channel is not None
    if stagewise and any(x is not None for x in (video, images, camera)):
        raise fail(
            "the stage-wise run (--channel, the stopping rules) runs the model's "
            "example input task after task: --video, --images and --camera are for "
            "frame runs"
        )
    with user_errors(model):
        with stage(f"loading {model}"):
            setup = device_setup(load_model(spec), device, edge_class)
        data: Frames | None = None
        if not stagewise:
            capture = stage(f"capturing {frames} frames from {camera}") if camera else nullcontext()
            with capture:
                data = frames_for(setup.model, frames, seed, video, images, camera)
    if stagewise:
        with user_errors(), progress_bars() as report:
            try:
                found = None if no_preflight else preflight_edge(setup, connection, options)
            except PreflightError as exc:
                raise fail(f"preflight: {exc}") from None
            staged = run_stages(
                setup,
                policy,
                frames,
                connection,
                options=options,
                channel=channel or "rayleigh",
                snr_db=snr_db,
                time_weight=time_weight,
                seed=seed,
                on_task=lambda r: report("tasks", r.task + 1, frames),
            )
        stage_config = {
            "model": spec.describe(),
            "policy": policy,
            "edge": edge,
            "tasks": frames,
            "device": device,
            "channel": channel or "rayleigh",
            "snr_db": snr_db,
            "time_weight": time_weight,
            "seed": seed,
        }
        stage_doc = {"schema": SCHEMA, "config": stage_config, **staged.summary}
        if found is not None:
            stage_doc["preflight"] = {"rtt_s": found.rtt_s, "uplink_bps": found.uplink_bps}
        _print(
            stage_doc,
            as_json,
            ("tasks", "mean_cost", "ci95", "analytic_cost", "optimal_analytic_cost", "fallbacks"),
            fmt,
        )
        _strict_exit(strict, stage_doc["fallbacks"], stage_doc["tasks"])
        return
    history = link_history_bps(trace, trace_scale, link) if link is not None else []
    assert data is not None
    writing = ResultWriter.for_setup(out_file, setup, data.sources) if out_file else nullcontext()
    with user_errors(), progress_bars() as report, writing as writer:
        try:
            run = run_frames(
                setup,
                policy,
                frames,
                link,
                connection,
                options=options,
                seed=seed,
                latency_req_s=req,
                history_bps=history,
                on_frame=lambda r: report("frames", r.frame + 1, frames),
                data=data,
                emulate=device != "host",
                check_edge=not no_preflight,
                on_output=writer.write if writer is not None else None,
                cooperation=cooperation,
            )
        except PreflightError as exc:
            raise fail(f"preflight: {exc}") from None
    if log is not None:
        with user_errors(f"--log {log}"):
            write_log(run.records, log)
    config = {
        "model": spec.describe(),
        "policy": policy,
        "edge": edge,
        "frames": frames,
        "device": device,
        "edge_class": edge_class,
        "trace": trace,
        "trace_scale": trace_scale if trace else None,
        "bandwidth": bandwidth,
        "rtt_s": rtt_s,
        "shaped": link is not None,
        "codec": codec,
        "quant": quant,
        "tls": context is not None,
        "seed": seed,
        "latency_req_s": req,
        "inputs": data.origin,
        "group": group,
        "experience": str(experience) if experience else None,
        "learner": learner,
        "out": str(out_file) if out_file else None,
    }
    doc = {
        "schema": SCHEMA,
        "config": config,
        "model": model,
        "policy": policy,
        "edge": edge,
        **run.summary,
    }
    columns = [
        "frames",
        "offloaded",
        "fallbacks",
        "mean_latency_s",
        "p50_latency_s",
        "p95_latency_s",
        "p99_latency_s",
    ]
    columns += [k for k in ("accuracy", "deadline_hit_rate") if doc.get(k) is not None]
    _print(doc, as_json, tuple(columns), fmt)
    if doc["errors"]:
        err.print(
            f"edge errors (frames finished on the device): {'; '.join(doc['errors'])}", markup=False
        )
    if out_file is not None:
        err.print(f"wrote {out_file} (one line per frame)", markup=False)
    fed = doc.get("federation")
    if fed is not None and not as_json:
        err.print(
            f"group {fed['group']}: {fed['messages']} SYNC messages, {fed['bytes']} bytes, "
            f"{fed['failed_syncs']} failed; the group holds {fed['group_records']} "
            f"records",
            markup=False,
        )
    _strict_exit(strict, doc["fallbacks"], doc["frames"])


def _strict_exit(strict: bool, fallbacks: int, frames: int) -> None:
    if strict and fallbacks:
        err.print(f"--strict: {fallbacks} of {frames} frames fell back to the device", markup=False)
        raise typer.Exit(STRICT_EXIT)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadValueError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def _print(doc: dict[str, Any], as_json: bool, columns: tuple[str, ...], fmt: str | None) -> None:
    if as_json:
        print_json(doc)
        return
    render(from_rows(f"{doc['model']}, policy {doc['policy']}", [doc], columns), fmt)
