"""`coinfer serve`: the edge server in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from coinfer.cli.app import app, err, out
from coinfer.cli.common import fail, model_specs, stage, user_errors


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
        list[str] | None,
        typer.Option(
            "--input-shape",
            "-i",
            help="Input shape (1,3,224,224 or 1,16:int64), once per forward argument; "
            "MODEL@SHAPE for one of several models.",
        ),
    ] = None,
    model_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--model-arg",
            "-a",
            help="A factory keyword argument KEY=VALUE (repeatable); MODEL@KEY=VALUE for one "
            "of several models.",
        ),
    ] = None,
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weights",
            help="A state_dict file (torch.save or .safetensors) to serve; MODEL@FILE for one "
            "of several models. The device must load the same one (every request is checked).",
        ),
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
    federation: Annotated[
        bool,
        typer.Option(
            "--federation",
            help="Keep federated learners' group statistics (SYNC: coinfer run -p fedlinucb-dw "
            "--group NAME).",
        ),
    ] = False,
    max_groups: Annotated[
        int, typer.Option("--max-groups", min=1, help="Federation: groups kept at most.")
    ] = 64,
) -> None:
    """Run the edge server: back halves for any device that asks, until SIGINT/SIGTERM.

    Examples:

    \b
      coinfer serve -m vgg16 --port 8765
      coinfer serve -m mynet:build --weights mynet.pt --input-shape 1,3,32,32
      coinfer serve -m a.py:build -m b.py:build --weights a.py:build@a.pt -i b.py:build@1,16:int64
      COINFER_TOKEN=s3cret coinfer serve -m alexnet --host 0.0.0.0 --tls-cert e.pem --tls-key e.key
      coinfer serve -m alexnet --federation --token s3cret

    With a token, every request but PING must carry it, and CONTROL is taken only from peers
    that have it; without one, CONTROL is off unless --allow-control. Limits and what they
    defend: docs/security.md.
    """
    import asyncio
    import logging

    from coinfer.edge.process import serve_until_signalled
    from coinfer.edge.security import check_exposure
    from coinfer.edge.server import EdgeServer, ServerOptions
    from coinfer.edge.store import ModelStore
    from coinfer.latency.host import configure_host
    from coinfer.wire.auth import resolve_token

    configure_host()  # steady timings: fixed threads, an allocator that keeps its memory
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("coinfer serve: %(message)s"))
    logging.getLogger("coinfer").addHandler(handler)
    if allow_control and no_control:
        raise fail("give --allow-control or --no-control, not both")
    models = model or ["vgg16"]
    try:
        secret = resolve_token(token, token_file)
        specs = model_specs(models, input_shape, model_arg, weights)
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
            federation=federation,
            max_groups=max_groups,
        )
        check_exposure(host, secret is not None, insecure)
    except (ValueError, KeyError) as exc:
        raise fail(str(exc)) from exc
    with user_errors(", ".join(models)), stage(f"loading {', '.join(models)}"):
        store = ModelStore(specs)
        server = EdgeServer(store, options)

    def announce(address: tuple[str, int]) -> None:
        for notice in server.notices:
            err.print(f"warning: {notice}", markup=False)
        scheme = "TLS" if server.tls else "TCP"
        guard = "token required" if server.token_required else "no token"
        groups = f", federation: up to {max_groups} groups" if federation else ""
        err.print(
            f"serving {', '.join(models)} on {address[0]}:{address[1]} ({scheme}, {guard}"
            f"{groups}; Ctrl-C stops)",
            markup=False,
        )
        for name, about in store.describe().items():
            source = next((str(s.weights) for s in specs if s.name == name and s.weights), None)
            err.print(
                f"  {name}: fingerprint {about['fingerprint']} (weights: {source or 'built in'})",
                markup=False,
            )

    try:
        asyncio.run(serve_until_signalled(server, host, port, announce))
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise fail(str(exc)) from exc
    out.print_json(data=server.stats.summary())
