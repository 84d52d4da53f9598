"""`coinfer ping EDGE` and `coinfer stats EDGE`: is an edge server there, how far, and what is
it doing — before and while devices run against it."""

from __future__ import annotations

import asyncio
import statistics
from typing import Annotated

import typer

from coinfer.cli.app import out
from coinfer.cli.common import command, print_json
from coinfer.cli.options import EdgeArgument, Json, Tls, TlsCa, Token, TokenFile
from coinfer.cli.tables import TableFormat, check_format, render_edge_stats
from coinfer.device.endpoint import Endpoint
from coinfer.device.preflight import PreflightError, reason
from coinfer.device.preflight import ping as send_pings
from coinfer.device.requests import edge_stats
from coinfer.output import SCHEMA

Count = Annotated[int, typer.Option("--count", "-c", min=1, max=1000, help="PINGs.")]


@command()
def ping(
    edge: EdgeArgument,
    count: Count = 5,
    tls_ca: TlsCa = None,
    tls: Tls = False,
    as_json: Json = False,
) -> None:
    """Send PINGs to an edge server on one connection and print the round trips (exit 2 with
    the reason when it cannot be reached).

    Examples:

    \\b
      coinfer ping 127.0.0.1:8765
      coinfer ping edge.lan:8765 --tls-ca ca.pem -c 20
    """
    endpoint = Endpoint.from_options(edge, tls=tls, tls_ca=tls_ca, what="EDGE")
    times = asyncio.run(send_pings(endpoint, count))
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


@command()
def stats(
    edge: EdgeArgument,
    token: Token = None,
    token_file: TokenFile = None,
    tls_ca: TlsCa = None,
    tls: Tls = False,
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """What a running edge server serves (each model's fingerprint and exits) and how it is
    doing: requests, errors, edge times, memory budget, connections.

    Examples:

    \\b
      coinfer stats 127.0.0.1:8765 --json
      coinfer stats edge.lan:8765 --token-file token --tls-ca ca.pem
    """
    check_format(fmt)
    endpoint = Endpoint.from_options(edge, token, token_file, tls, tls_ca, "EDGE")
    try:
        summary = asyncio.run(edge_stats(endpoint))
    except Exception as exc:  # whatever the edge did, named for a person
        raise PreflightError(reason(exc, endpoint)) from None
    if as_json:
        print_json({"schema": SCHEMA, "edge": edge, "stats": summary})
        return
    render_edge_stats(edge, summary, fmt)
