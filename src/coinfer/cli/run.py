"""`coinfer run`: the device side against a real edge, any policy that runs live — on a real
network as it is, or over a link shaped by a trace or a bandwidth (``apps.live``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from coinfer.apps.live import NamedModel, RunConfig
from coinfer.assembly import DeviceSetup, assemble
from coinfer.bundle.view import BundleSource
from coinfer.cli import options as o
from coinfer.cli.app import err
from coinfer.cli.common import (
    command,
    config_doc,
    given,
    model_spec,
    print_json,
    seconds,
    stage,
    user_errors,
    writable,
)
from coinfer.cli.live_runs import run_frames_doc, run_stages_doc
from coinfer.cli.tables import TableFormat, check_format, from_rows, render
from coinfer.defaults import EDGE_CLASS, LIVE_DEVICE_CLASS
from coinfer.device.bundles import bundle_setup
from coinfer.device.client import ClientOptions
from coinfer.device.endpoint import Endpoint
from coinfer.device.input_files import recorded_frames
from coinfer.device.inputs import image_files
from coinfer.errors import BadValueError
from coinfer.latency.host import configure_host

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
    protocol: o.Protocol = "native",
    model: o.Models = None,
    input_shape: o.InputShapes = None,
    model_arg: o.ModelArgs = None,
    weights: o.Weights = None,
    leaf: o.Leaf = None,
    bundle: o.Bundle = None,
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
      coinfer run -m alexnet -p stopping --channel rayleigh --snr-db 10 --device edge-pc/8
      coinfer run --edge edge.lan:8765 -m alexnet --token-file token --tls-ca ca.pem --json
      coinfer run --edge edge.lan:8765 -m alexnet -p fedlinucb-dw --group pi4-alexnet
        --experience pi4.json --learner paper
      coinfer run --edge edge.lan:8765 --bundle alexnet-bundle/ --images photos/ --device host
      coinfer run --edge http://edge.lan:8000 --protocol v2 --bundle alexnet-bundle/

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
    source = _source(bundle, model, input_shape, model_arg, weights, leaf)
    frames = frames if given(context, "frames") else _one_pass(frames, images, inputs_file)
    config = _run_config(source, locals())
    endpoint = Endpoint.from_options(edge, token, token_file, tls, tls_ca, protocol=protocol)
    options = ClientOptions(codec, quant, edge_timeout)
    with user_errors(source.name), stage(f"loading {source.name}"):
        setup = _setup(source, config)
    settings = _settings(config, endpoint, options, out_file)
    if config.stagewise:
        doc = run_stages_doc(config, setup, endpoint, options) | {"config": settings}
        _print(doc, as_json, STAGE_COLUMNS, fmt)
        _strict_exit(strict, doc["fallbacks"], doc["tasks"])
        return
    doc = run_frames_doc(config, setup, endpoint, options, out_file, log)
    doc["config"] = settings | doc["config"]
    extra = tuple(k for k in ("accuracy", "deadline_hit_rate") if doc.get(k) is not None)
    _print(doc, as_json, FRAME_COLUMNS + extra, fmt)
    _report(doc, out_file, as_json)
    _strict_exit(strict, doc["fallbacks"], doc["frames"])


def _settings(
    config: RunConfig, endpoint: Endpoint, options: ClientOptions, out_file: Path | None
) -> dict[str, Any]:
    """The run's configuration as its JSON records it."""
    return config_doc(config) | {
        "shaped": config.link() is not None,
        "codec": options.codec,
        "quant": options.quant,
        "tls": endpoint.tls is not None,
        "protocol": endpoint.protocol,
        "out": str(out_file) if out_file else None,
    }


def _one_pass(frames: int, images: Path | None, inputs_file: Path | None) -> int:
    """Without --frames, a folder's images or a file's recorded inputs are each run once."""
    if images is not None:
        return len(image_files(images))
    if inputs_file is not None:
        return recorded_frames(inputs_file)
    return frames


def _source(bundle: Path | None, model: list[str] | None, *model_options: Any) -> NamedModel:
    """The model the options name, or the bundle a device runs: a bundle names its model, so
    no model option goes with it."""
    if bundle is None:
        return model_spec(model, *model_options)
    if model or any(model_options):
        raise BadValueError(
            "--bundle holds its model (exported with its weights and shapes): give --bundle "
            "without --model, --input-shape, --model-arg, --weights or --leaf"
        )
    return BundleSource.read(bundle)


def _setup(source: NamedModel, config: RunConfig) -> DeviceSetup:
    if isinstance(source, BundleSource):
        if config.stagewise:
            raise BadValueError(
                "the stage-wise run (the stopping rules, --channel) runs torch's segments, not "
                "a bundle's: run it with -m MODEL"
            )
        return bundle_setup(source.folder, config.device, config.edge_class)
    from coinfer.zoo.spec import ModelSpec  # torch's model: only on the torch path

    assert isinstance(source, ModelSpec)
    return assemble(source, config.device, config.edge_class)


def _run_config(spec: NamedModel, given: dict[str, Any]) -> RunConfig:
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
