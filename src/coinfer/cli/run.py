"""`coinfer run`: the device side against a real edge, any policy that runs live."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coinfer import zoo
from coinfer.cli.app import app, err, out
from coinfer.cli.common import fail, parse_seconds, progress_bars


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
            help="A policy that runs live (coinfer policies): mulinucb-link, neurosurgeon, "
            "edgent, edgent-dynamic, stopping, osla, edge-only, fixed-K ...",
        ),
    ] = "mulinucb-link",
    frames: Annotated[
        int, typer.Option("--frames", "-n", min=1, help="Frames (tasks, for stopping) to run.")
    ] = 100,
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """The device: run frames, offloading as the policy decides, against a real edge.

    [bold]Examples[/]

      coinfer run --edge 127.0.0.1:8765 -m vgg16 -p mulinucb-link -n 200 --trace norway_bus_1

      coinfer run -m branchy_alexnet -p edgent-dynamic --latency-req 100ms --device rpi3
        --trace norway_bus_1 --trace-scale 0.5

      coinfer run -m alexnet -p stopping --channel rayleigh --snr-db 10 --time-weight 1
        --device edge-pc/8

      COINFER_TOKEN=s3cret coinfer run --edge edge.lan:8765 -m alexnet --tls-ca ca.pem --json

    The edge must serve the model (coinfer serve -m MODEL). Inputs: the held-out digits for
    branchy_alexnet (every answer checked against its label), else a synthetic video. Every
    reply is checked (kind, request, the model's output shapes and dtypes, a plausible edge
    time); a frame whose reply fails, or that the edge does not finish in time, is finished on
    the device: no frame is lost.
    """

    from coinfer.data import trace_path
    from coinfer.latency.host import configure_host
    from coinfer.latency.link import Link, TraceBandwidth, parse_bandwidth
    from coinfer.policies import registry
    from coinfer.policies.setup import device_setup, load_model
    from coinfer.runtime.client import write_log
    from coinfer.runtime.live import parse_address
    from coinfer.runtime.runs import Connection, link_history_bps, run_frames, run_stages
    from coinfer.runtime.security import device_tls, resolve_token

    configure_host()
    try:
        entry = registry.check_world(policy, "live")
        address = parse_address(edge)
        secret = resolve_token(token, token_file)
        context = device_tls(tls_ca) if tls or tls_ca is not None else None
        connection = Connection(address, secret, context, edge_timeout, codec, quant)
        req = parse_seconds(latency_req) if latency_req is not None else None
        rtt_s = parse_seconds(rtt)
        if bandwidth is not None and trace is not None:
            raise ValueError("give --trace or --bandwidth, not both")
        if trace is not None:
            link = Link(TraceBandwidth.from_file(trace_path(trace), scale=trace_scale), rtt_s)
        else:
            link = Link.constant(parse_bandwidth(bandwidth or "1gbps"), rtt_s)
        with err.status(f"loading {model} ...", spinner="dots"):
            setup = device_setup(load_model(model), device, edge_class)
    except (ValueError, zoo.ModelNotFoundError) as exc:
        raise fail(str(exc)) from exc
    if entry.kind == "stage" or channel is not None:
        with progress_bars() as report:
            try:
                staged = run_stages(
                    setup,
                    policy,
                    frames,
                    connection,
                    channel=channel or "rayleigh",
                    snr_db=snr_db,
                    time_weight=time_weight,
                    seed=seed,
                    on_task=lambda r: report("tasks", r.task + 1, frames),
                )
            except ValueError as exc:
                raise fail(str(exc)) from exc
        _print(staged.summary, as_json, ("tasks", "mean_cost", "ci95", "analytic_cost",
                                         "optimal_analytic_cost", "fallbacks"))  # fmt: skip
        return
    history = link_history_bps(trace, trace_scale, link)
    with progress_bars() as report:
        try:
            result, records, _ = run_frames(
                setup, policy, frames, link, connection, seed=seed, latency_req_s=req,
                history_bps=history, on_frame=lambda r: report("frames", r.frame + 1, frames),
            )  # fmt: skip
        except ValueError as exc:
            raise fail(str(exc)) from exc
    if log is not None:
        write_log(records, log)
    doc = {"model": model, "policy": policy, "edge": edge, **result}
    columns = ["frames", "offloaded", "fallbacks", "mean_latency_s", "p95_latency_s"]
    columns += [k for k in ("accuracy", "deadline_hit_rate") if doc.get(k) is not None]
    _print(doc, as_json, tuple(columns))
    if doc["errors"]:
        err.print(f"edge errors (frames finished on the device): {'; '.join(doc['errors'])}")


def _print(doc: dict[str, Any], as_json: bool, columns: tuple[str, ...]) -> None:
    from coinfer.report import cell_text

    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        return
    table = Table(title=f"{doc['model']}, policy {doc['policy']}")
    for key in columns:
        table.add_column(key, justify="right", overflow="fold")
    table.add_row(*(cell_text(doc.get(k)) for k in columns))
    out.print(table)
