"""`coinfer serve`: the edge server in the foreground (its options are ``edge.options``')."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coinfer.cli.app import err
from coinfer.cli.common import command, model_specs, print_json, stage, user_errors
from coinfer.cli.options import (
    InputShapes,
    Json,
    Leaf,
    ModelArgs,
    Models,
    Slowdown,
    Token,
    TokenFile,
    Weights,
)
from coinfer.cli.tables import render_edge_stats
from coinfer.edge.options import ServerOptions
from coinfer.edge.security import check_exposure
from coinfer.errors import BadValueError
from coinfer.latency.host import configure_host
from coinfer.output import SCHEMA
from coinfer.wire.auth import resolve_token

if TYPE_CHECKING:
    from coinfer.edge.server import EdgeServer
    from coinfer.edge.store import ModelStore


Host = Annotated[
    str,
    typer.Option(
        "--host",
        help="Address to bind (loopback by default; any other needs --token, or --insecure).",
    ),
]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="0 picks a free port.")]
HttpPort = Annotated[
    int | None,
    typer.Option(
        "--http-port",
        min=0,
        max=65535,
        help="Also answer the KServe Open Inference Protocol v2 (REST, binary tensors) on this "
        "port: the same models, token (Authorization: Bearer), limits and budget; 0 picks one. "
        "Names: docs/protocol.md.",
    ),
]
BatchWindow = Annotated[
    float, typer.Option("--batch-window", min=0.0, help="Micro-batch window (ms); 0 = off.")
]
ReadTimeout = Annotated[
    float, typer.Option("--read-timeout", min=0.01, help="Seconds a whole message may take.")
]
IdleTimeout = Annotated[
    float,
    typer.Option("--idle-timeout", min=0.01, help="Close a connection idle this many seconds."),
]
WriteTimeout = Annotated[
    float,
    typer.Option(
        "--write-timeout", min=0.01, help="Drop a peer that has not taken a reply in this long (s)."
    ),
]
MaxConnections = Annotated[
    int, typer.Option("--max-connections", min=1, help="Connections served at once.")
]
MaxPerSource = Annotated[
    int,
    typer.Option(
        "--max-per-source", min=1, help="Connections from one address (a fleet behind a NAT)."
    ),
]
LoginTimeout = Annotated[
    float,
    typer.Option(
        "--login-timeout", min=0.01, help="Seconds from connecting to a request with the token."
    ),
]
MinReceiveRate = Annotated[
    float,
    typer.Option(
        "--min-receive-rate", min=0.0, help="Bytes/s a message must keep up after 1 s (0: off)."
    ),
]
MaxBufferMb = Annotated[
    float,
    typer.Option(
        "--max-buffer-mb",
        min=1.0,
        help="Memory budget (MiB) for everything peers make the server hold.",
    ),
]
AllowControl = Annotated[
    bool,
    typer.Option("--allow-control", help="Take CONTROL (run-time slowdown) even without a token."),
]
NoControl = Annotated[
    bool, typer.Option("--no-control", help="Refuse run-time slowdown changes (CONTROL).")
]
TlsCert = Annotated[
    Path | None, typer.Option("--tls-cert", help="Serve TLS with this certificate (PEM).")
]
TlsKey = Annotated[
    Path | None, typer.Option("--tls-key", help="The certificate's private key (PEM).")
]
Insecure = Annotated[
    bool, typer.Option("--insecure", help="Serve a non-loopback --host without a token anyway.")
]
Federation = Annotated[
    bool,
    typer.Option(
        "--federation",
        help="Keep federated learners' group statistics (SYNC: coinfer run -p fedlinucb-dw "
        "--group NAME).",
    ),
]
MaxGroups = Annotated[
    int, typer.Option("--max-groups", min=1, help="Federation: groups kept at most.")
]


@command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8765,
    model: Models = None,
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    leaf: Leaf = None,
    slowdown: Slowdown = 1.0,
    token: Token = None,
    token_file: TokenFile = None,
    batch_window_ms: BatchWindow = 0.0,
    read_timeout: ReadTimeout = 10.0,
    idle_timeout: IdleTimeout = 60.0,
    write_timeout: WriteTimeout = 10.0,
    max_connections: MaxConnections = 512,
    max_per_source: MaxPerSource = 256,
    login_timeout: LoginTimeout = 30.0,
    min_receive_rate: MinReceiveRate = 1024.0,
    max_buffer_mb: MaxBufferMb = 1024.0,
    allow_control: AllowControl = False,
    no_control: NoControl = False,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    insecure: Insecure = False,
    federation: Federation = False,
    max_groups: MaxGroups = 64,
    http_port: HttpPort = None,
    as_json: Json = False,
) -> None:
    """Run the edge server: back halves for any device that asks, until SIGINT/SIGTERM.

    Examples:

    \b
      coinfer serve -m vgg16 --port 8765
      coinfer serve -m mynet:build --weights mynet.pt --input-shape 1,3,32,32
      coinfer serve -m a.py:build -m b.py:build --weights a.py:build@a.pt -i b.py:build@1,16:int64
      coinfer serve -m alexnet --host 0.0.0.0 --token-file token --tls-cert e.pem --tls-key e.key
      coinfer serve -m alexnet --federation --token-file token
      coinfer serve -m alexnet --http-port 8000   # tritonclient, KServe clients: alexnet.cut5

    On stopping it prints its statistics (as coinfer stats does; --json: one JSON document on
    stdout). With a token, every request but PING must carry it, and CONTROL is taken only
    from peers that have it; without one, CONTROL is off unless --allow-control. Limits and
    what they defend: docs/security.md.
    """
    from coinfer.edge.process import serve_until_signalled
    from coinfer.edge.server import EdgeServer
    from coinfer.edge.store import ModelStore

    configure_host()  # steady timings: fixed threads, an allocator that keeps its memory
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("coinfer serve: %(message)s"))
    logging.getLogger("coinfer").addHandler(handler)
    if allow_control and no_control:
        raise BadValueError("give --allow-control or --no-control, not both")
    models = model or ["vgg16"]
    secret = resolve_token(token, token_file)
    specs = model_specs(models, input_shape, model_arg, weights, leaf)
    options = ServerOptions(  # checked before what may be minutes of model loading
        slowdown,
        secret,
        read_timeout,
        idle_timeout,
        write_timeout,
        batch_window_ms / 1000,
        allow_control=False if no_control else (True if allow_control else None),
        max_buffer_bytes=int(max_buffer_mb * 1024 * 1024),
        max_connections=max_connections,
        tls_cert=tls_cert,
        tls_key=tls_key,
        insecure=insecure,
        federation=federation,
        max_groups=max_groups,
        login_timeout_s=login_timeout,
        min_receive_rate=min_receive_rate,
        max_per_source=max_per_source,
        http_port=http_port,
    )
    check_exposure(host, secret is not None, insecure)
    with user_errors(", ".join(models)), stage(f"loading {', '.join(models)}"):
        store = ModelStore(specs)
        server = EdgeServer(store, options)

    bound: list[Any] = []  # the address it listens on (port 0: the one the OS picked)

    def announce(address: tuple[str, int]) -> None:
        bound.extend(address[:2])
        _announce(address, server, store, specs, max_groups if federation else None)

    try:
        asyncio.run(serve_until_signalled(server, host, port, announce))
    except OSError as exc:
        raise BadValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    _report(f"{bound[0]}:{bound[1]}" if bound else f"{host}:{port}", server, as_json)


def _announce(
    address: tuple[str, int],
    server: EdgeServer,
    store: ModelStore,
    specs: list[Any],
    groups: int | None,
) -> None:
    """Where it listens, how it is guarded and what it serves, once it is bound."""
    for notice in server.notices:
        err.print(f"warning: {notice}", markup=False)
    scheme = "TLS" if server.tls else "TCP"
    guard = "token required" if server.token_required else "no token"
    federation = f", federation: up to {groups} groups" if groups is not None else ""
    names = ", ".join(spec.name for spec in specs)  # as given on the command line
    where = f"{address[0]}:{address[1]}"
    err.print(
        f"serving {names} on {where} ({scheme}, {guard}{federation}; Ctrl-C stops)",
        markup=False,
    )
    if server.http_address is not None:
        http = f"{server.http_address[0]}:{server.http_address[1]}"
        err.print(f"  Open Inference Protocol v2 (REST) on {http}", markup=False)
    for name, about in store.describe().items():
        source = next((str(s.weights) for s in specs if s.name == name and s.weights), None)
        err.print(
            f"  {name}: fingerprint {about['fingerprint']} (weights: {source or 'built in'})",
            markup=False,
        )


def _report(edge: str, server: EdgeServer, as_json: bool) -> None:
    """The server's statistics as it stops, labelled (the same table as coinfer stats)."""
    summary = server.stats.summary()
    if as_json:
        print_json({"schema": SCHEMA, "edge": edge, "stopped": True, "stats": summary})
        return
    render_edge_stats(f"{edge} at exit", summary)
