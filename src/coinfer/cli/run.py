"""`coinfer run`: the device side against a real edge, any policy that runs live — on a real
network as it is, or over a link shaped by a trace or a bandwidth (``apps.live``)."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from coinfer.apps.live import RunConfig, run_live
from coinfer.assembly import DeviceSetup, assemble
from coinfer.cli import options as o
from coinfer.cli.app import err
from coinfer.cli.common import (
    command,
    config_doc,
    given,
    interruption_said,
    model_spec,
    print_json,
    progress_bars,
    seconds,
    stage,
    user_errors,
    writable,
)
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.defaults import EDGE_CLASS, LIVE_DEVICE_CLASS
from coinfer.device.client import ClientOptions
from coinfer.device.endpoint import Endpoint
from coinfer.device.input_files import recorded_frames
from coinfer.device.inputs import frames_for, image_files
from coinfer.device.records import FrameRecord, write_log
from coinfer.device.results import ResultWriter
from coinfer.device.session import preflight_edge
from coinfer.latency.host import configure_host
from coinfer.output import SCHEMA
from coinfer.systems.stopping.live import run_stages
from coinfer.zoo.spec import ModelSpec

STRICT_EXIT = 3  # --strict: the run finished, but some frame fell back to the device
FRAME_COLUMNS = (
    "frames",
    "offloaded",
    "fallbacks",
    "mean_latency_s",
    "p50_latency_s",
    "p95_latency_s",
    "p99_latency_s",
)
STAGE_COLUMNS = (
    "tasks",
    "mean_cost",
    "ci95",
    "analytic_cost",
    "optimal_analytic_cost",
    "fallbacks",
)


@command()
def run(
    context: typer.Context,
    edge: o.Edge = "127.0.0.1:8765",
    model: o.Models = None,
    input_shape: o.InputShapes = None,
    model_arg: o.ModelArgs = None,
    weights: o.Weights = None,
    leaf: o.Leaf = None,
    policy: o.Policy = "mulinucb-link",
    frames: o.Frames = 100,
    trace: o.Trace = None,
    trace_scale: o.TraceScale = 1.0,
    bandwidth: o.Bandwidth = None,
    rtt: o.Rtt = None,
    device: o.Device = LIVE_DEVICE_CLASS,
    edge_class: o.EdgeClass = EDGE_CLASS,
    codec: o.Codec = "none",
    quant: o.Quant = "none",
    token: o.Token = None,
    token_file: o.TokenFile = None,
    tls_ca: o.TlsCa = None,
    tls: o.Tls = False,
    edge_timeout: o.EdgeTimeout = 5.0,
    log: o.Log = None,
    out_file: o.Out = None,
    video: o.Video = None,
    images: o.Images = None,
    camera: o.Camera = None,
    inputs_file: o.InputsFile = None,
    strict: o.Strict = False,
    no_preflight: o.NoPreflight = False,
    seed: o.Seed = 0,
    latency_req: o.LatencyReq = None,
    channel: o.Channel = None,
    snr_db: o.SnrDb = 10.0,
    time_weight: o.TimeWeight = 1.0,
    group: o.Group = None,
    experience: o.Experience = None,
    learner: o.Learner = "link",
    as_json: o.Json = False,
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
      coinfer run --edge edge.lan:8765 -m alexnet --token-file token --tls-ca ca.pem --json
      coinfer run --edge edge.lan:8765 -m alexnet -p fedlinucb-dw --group pi4-alexnet
        --experience pi4.json --learner paper

    The edge must serve the same model (coinfer serve -m MODEL, the same --weights,
    --model-arg, --input-shape and --leaf): a preflight checks that it is reachable, takes the
    token and holds the very same weights (fingerprint), and measures the RTT and upload rate
    the policy starts from; any problem is one line and exit 2. Inputs: --video, --images (each
    image once, unless --frames asks for more) or --camera for an image model, --inputs FILE
    (recorded inputs, each row once unless --frames asks more) for any model; else the
    held-out digits for branchy_alexnet (every answer checked against its label), a synthetic
    video for other image models, seeded tensors of the declared shapes for any other model
    (100 frames unless --frames). Every reply is checked (kind, request, the model's output
    shapes and dtypes, a plausible edge time); a frame whose reply fails, or that the edge does
    not finish in time, is finished on the device: no frame is lost (--strict makes that exit 3).
    """
    configure_host()
    check_format(fmt)
    writable(out_file, "--out")
    writable(log, "--log")
    spec = model_spec(model, input_shape, model_arg, weights, leaf)
    frames = frames if given(context, "frames") else _one_pass(frames, images, inputs_file)
    config = _run_config(spec, locals())
    endpoint = Endpoint.from_options(edge, token, token_file, tls, tls_ca)
    options = ClientOptions(codec, quant, edge_timeout)
    with user_errors(spec.name), stage(f"loading {spec.name}"):
        setup = assemble(spec, device, edge_class)
    settings = config_doc(config) | {
        "shaped": config.link() is not None,
        "codec": codec,
        "quant": quant,
        "tls": endpoint.tls is not None,
        "out": str(out_file) if out_file else None,
    }
    if config.stagewise:
        doc = _stages(config, setup, endpoint, options) | {"config": settings}
        _print(doc, as_json, STAGE_COLUMNS, fmt)
        _strict_exit(strict, doc["fallbacks"], doc["tasks"])
        return
    doc = _frames(config, setup, endpoint, options, out_file, log)
    doc["config"] = settings | doc["config"]
    extra = tuple(k for k in ("accuracy", "deadline_hit_rate") if doc.get(k) is not None)
    _print(doc, as_json, FRAME_COLUMNS + extra, fmt)
    _report(doc, out_file, as_json)
    _strict_exit(strict, doc["fallbacks"], doc["frames"])


def _one_pass(frames: int, images: Path | None, inputs_file: Path | None) -> int:
    """Without --frames, a folder's images or a file's recorded inputs are each run once."""
    if images is not None:
        return len(image_files(images))
    if inputs_file is not None:
        return recorded_frames(inputs_file)
    return frames


def _run_config(spec: ModelSpec, given: dict[str, Any]) -> RunConfig:
    """The run's config from the command's options, named as its fields (durations read)."""
    same = {f.name for f in dataclasses.fields(RunConfig)} - {
        "model",
        "rtt_s",
        "latency_req_s",
        "preflight",
    }
    return RunConfig(
        spec,
        rtt_s=seconds(given["rtt"], "--rtt"),
        latency_req_s=seconds(given["latency_req"], "--latency-req", positive=True),
        preflight=not given["no_preflight"],
        **{n: given[n] for n in same},
    )


def _stages(
    config: RunConfig, setup: DeviceSetup, edge: Endpoint, options: ClientOptions
) -> dict[str, Any]:
    """Stage by stage (optimal stopping): the preflight, then the tasks."""
    found = preflight_edge(setup, edge, options) if config.preflight else None
    with progress_bars() as report:
        staged = run_stages(
            setup,
            config.policy,
            config.frames,
            edge,
            options=options,
            channel=config.channel or "rayleigh",
            snr_db=config.snr_db,
            time_weight=config.time_weight,
            seed=config.seed,
            on_task=lambda r: report("tasks", r.task + 1, config.frames),
        )
    doc = {"schema": SCHEMA, **staged.summary}
    if found is not None:
        doc["preflight"] = {"rtt_s": found.rtt_s, "uplink_bps": found.uplink_bps}
    return doc


def _frames(
    config: RunConfig,
    setup: DeviceSetup,
    edge: Endpoint,
    options: ClientOptions,
    out_file: Path | None,
    log: Path | None,
) -> dict[str, Any]:
    """Frame by frame: the inputs, the run (each frame's outputs to ``out_file``), the log."""
    with user_errors(setup.model.name):
        camera = config.camera
        capture = (
            stage(f"capturing {config.frames} frames from {camera}") if camera else (nullcontext())
        )
        with capture:
            data = frames_for(
                setup.model,
                config.frames,
                config.seed,
                config.video,
                config.images,
                camera,
                config.inputs_file,
            )
    writing = ResultWriter.for_setup(out_file, setup, data.sources) if out_file else nullcontext()
    finished = [0]

    def on_frame(record: FrameRecord) -> None:
        finished[0] = record.frame + 1
        report("frames", record.frame + 1, config.frames)

    said = interruption_said(config.frames, finished, out_file)
    with said, progress_bars() as report, writing as writer:
        done = run_live(
            config,
            setup,
            edge,
            data,
            options,
            on_frame=on_frame,
            on_output=writer.write if writer is not None else None,
        )
    if log is not None:
        write_log(done.records, log)
    return {
        "schema": SCHEMA,
        "config": {"inputs": data.origin},
        "model": setup.model.name,
        "policy": config.policy,
        "edge": config.edge,
        **done.summary,
    }


def _report(doc: dict[str, Any], out_file: Path | None, as_json: bool) -> None:
    """What the table does not say: the edge's errors, the results file, the group."""
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


def _strict_exit(strict: bool, fallbacks: int, frames: int) -> None:
    if strict and fallbacks:
        err.print(f"--strict: {fallbacks} of {frames} frames fell back to the device", markup=False)
        raise typer.Exit(STRICT_EXIT)


def _print(doc: dict[str, Any], as_json: bool, columns: tuple[str, ...], fmt: str | None) -> None:
    if as_json:
        print_json(doc)
        return
    title = f"{doc['config']['model']['name']}, policy {doc['config']['policy']}"
    render(from_rows(title, [doc], columns), fmt)
