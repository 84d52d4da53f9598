"""`coinfer ping EDGE` and `coinfer stats EDGE`: is an edge server there, how far, and what is
it doing — before and while devices run against it."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer

from coinfer.cli.app import app, out
from coinfer.cli.common import fail, print_json, user_errors
from coinfer.cli.tables import TableData, TableFormat, check_format, render
from coinfer.output import SCHEMA

Edge = Annotated[str, typer.Argument(help="The edge server, HOST:PORT.")]
Token = Annotated[
    str | None,
    typer.Option("--token", help="The server's auth token (or --token-file, COINFER_TOKEN)."),
]
TokenFile = Annotated[
    Path | None, typer.Option("--token-file", help="Read the auth token from this file.")
]
TlsCa = Annotated[
    Path | None, typer.Option("--tls-ca", help="TLS, trusting the CA in this PEM file.")
]
Tls = Annotated[bool, typer.Option("--tls", help="TLS, trusting the system's CAs.")]


def _connect(
    edge: str,
    tls: bool,
    tls_ca: Path | None,
    token: str | None = None,
    token_file: Path | None = None,
) -> Any:
    from coinfer.device.endpoint import Endpoint

    with user_errors():
        return Endpoint.from_options(edge, token, token_file, tls, tls_ca, "EDGE")


@app.command()
def ping(
    edge: Edge,
    count: Annotated[int, typer.Option("--count", "-c", min=1, max=1000, help="PINGs.")] = 5,
    tls_ca: TlsCa = None,
    tls: Tls = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Send PINGs to an edge server on one connection and print the round trips (exit 2 with
    the reason when it cannot be reached).

    Examples:

    \b
      coinfer ping 127.0.0.1:8765
      coinfer ping edge.lan:8765 --tls-ca ca.pem -c 20
    """
    from coinfer.device.preflight import PreflightError
    from coinfer.device.preflight import ping as send_pings

    endpoint = _connect(edge, tls, tls_ca)
    try:
        times = asyncio.run(send_pings(endpoint, count))
    except PreflightError as exc:
        raise fail(str(exc)) from None
    low, mid, high = min(times), statistics.median(times), max(times)
    if as_json:
        print_json(
            {
                "schema": SCHEMA,
                "edge": edge,
                "count": count,
                "rtt_s": times,
                "min_s": low,
                "median_s": mid,
                "max_s": high,
            }
        )
        return
    out.print(
        f"{edge}: {count} PINGs, round trip min {1e3 * low:.2f} ms, median "
        f"{1e3 * mid:.2f} ms, max {1e3 * high:.2f} ms",
        markup=False,
    )


@app.command()
def stats(
    edge: Edge,
    token: Token = None,
    token_file: TokenFile = None,
    tls_ca: TlsCa = None,
    tls: Tls = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    fmt: TableFormat = None,
) -> None:
    """What a running edge server serves (each model's fingerprint and exits) and how it is
    doing: requests, errors, edge times, memory budget, connections.

    Examples:

    \b
      coinfer stats 127.0.0.1:8765 --json
      COINFER_TOKEN=s3cret coinfer stats edge.lan:8765 --tls-ca ca.pem
    """
    from coinfer.device.preflight import reason
    from coinfer.device.requests import edge_stats

    check_format(fmt)
    endpoint = _connect(edge, tls, tls_ca, token, token_file)
    try:
        summary = asyncio.run(edge_stats(endpoint))
    except Exception as exc:
        raise fail(reason(exc, endpoint)) from None
    if as_json:
        print_json({"schema": SCHEMA, "edge": edge, "stats": summary})
        return
    models = summary.get("models") or {}
    table = TableData(
        f"{edge}: serving", ["model", "fingerprint", "exits"], left={"model", "fingerprint"}
    )
    for name, about in models.items():
        table.add(name, about.get("fingerprint"), ", ".join(map(str, about.get("exits", []))))
    render(table, fmt)
    rest = TableData(f"{edge}: statistics", ["what", "value"], left={"what", "value"})
    for key, value in summary.items():
        if key != "models":
            rest.add(key, value)
    render(rest, fmt)
