"""Before a device's first frame: is the edge there, does it take our token, does it serve our
model — the very same model (fingerprint) — and what are the link's RTT and upload rate?

Every failure is a ``PreflightError`` whose text names the cause and the fix: a wrong host,
a refused port, a TLS mismatch, a wrong token, a model not served, other weights. Without a
preflight all of these would look the same: every frame finished on the device.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coinfer.device.client import DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.requests import edge_stats, round_trips
from coinfer.device.v2_exchange import v2_gets
from coinfer.errors import EdgeUnreachableError
from coinfer.graph.types import BOUNDARY, OUTPUT, CutTable
from coinfer.wire import oip
from coinfer.wire.protocol import ErrorCode, ProtocolError

PREFLIGHT_TIMEOUT_S = 10.0
MAX_UPLINK_BPS = 10e9


class PreflightError(EdgeUnreachableError):
    """The edge cannot serve this device; the message says why and what to do."""

    def __str__(self) -> str:
        return f"preflight: {self.args[0]}"


@dataclass(frozen=True)
class Preflight:
    rtt_s: float  # median of the PINGs
    uplink_bps: float | None  # measured by one upload of the model's input (cut 0)
    served: dict[str, Any]  # what STATS says the edge serves
    federation: bool = False  # the edge keeps federated learners' groups (serve --federation)


def reason(exc: BaseException, endpoint: Endpoint) -> str:
    """Why talking to the edge failed, for a person."""
    address, tls, where = endpoint.address, endpoint.tls is not None, str(endpoint)
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {address[0]!r} ({exc.strerror}): check --edge"
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"nothing listens on {where} (connection refused): start `coinfer serve` "
            f"there, or check --edge"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS with {where} failed ({exc.reason or exc}): does the server use --tls-cert, "
            f"and does --tls-ca hold its CA?"
        )
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return (
            f"no answer from {where} within {PREFLIGHT_TIMEOUT_S:g} s: a firewall, or not "
            f"a coinfer server?"
        )
    if isinstance(exc, ProtocolError):
        if exc.code is ErrorCode.UNAUTHORIZED:
            return (
                f"the edge at {where} refused the token: give the one it was started with "
                f"(--token-file, COINFER_TOKEN)"
            )
        if exc.code is ErrorCode.BAD_FRAME and not tls:
            return (
                f"{where} does not speak coinfer over plain TCP ({exc}): a TLS server "
                f"needs --tls-ca"
            )
        return f"the edge at {where} answered {exc}"
    if isinstance(exc, ConnectionError):
        hint = " (a TLS server? give --tls-ca)" if not tls else ""
        return f"the edge at {where} closed the connection{hint}"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


async def preflight(client: DeviceClient, example: Sequence[Any], pings: int = 3) -> Preflight:
    """PINGs (reachable, RTT), STATS (token, model served, fingerprint of every path the
    device runs), then one upload of ``example`` at cut 0 (the upload rate; the edge's
    fingerprint check end to end)."""
    endpoint = client.endpoint
    if endpoint is None:
        raise PreflightError("no edge configured")
    if endpoint.protocol == "v2":
        return await preflight_v2(client, example, pings)
    try:
        rtts = await round_trips(endpoint, pings, PREFLIGHT_TIMEOUT_S)
        stats = await edge_stats(endpoint, PREFLIGHT_TIMEOUT_S)
    except Exception as exc:
        raise PreflightError(reason(exc, endpoint)) from None
    served = stats.get("models")
    if not isinstance(served, dict):
        raise PreflightError(
            f"the edge at {endpoint} does not list its models (another coinfer version?)"
        )
    about = served.get(client.model)
    if not isinstance(about, dict):
        names = ", ".join(map(str, served)) or "nothing"
        raise PreflightError(
            f"the edge serves {names}, not {client.model!r}: start it with "
            f"coinfer serve -m {client.model} (and the same --weights, "
            f"--model-arg, --input-shape, --leaf)"
        )
    mine = client.path(None).part.fingerprint.hex()
    exits = about.get("exit_fingerprints")
    exits = exits if isinstance(exits, dict) else {}
    same_exits = all(
        exits.get(str(e)) == client.path(e).part.fingerprint.hex() for e in client.exits
    )
    if about.get("fingerprint") != mine or not same_exits:
        raise PreflightError(
            f"the edge's {client.model!r} is not this device's: the edge's fingerprint "
            f"{str(about.get('fingerprint'))[:12]}, this device's {mine[:12]} (other weights, "
            f"factory arguments, input shapes or leaf modules): give both sides the same "
            f"--weights, --model-arg, --input-shape and --leaf"
        )
    return await _measure_upload(client, example, statistics.median(rtts), served, stats)


async def _measure_upload(
    client: DeviceClient,
    example: Sequence[Any],
    rtt: float,
    served: dict[str, Any],
    stats: dict[str, Any],
) -> Preflight:
    """One upload of ``example`` at cut 0: the upload rate, and the whole path end to end."""
    endpoint = client.endpoint
    assert endpoint is not None
    try:
        start = time.perf_counter()
        _, up, edge_s, _, sent = await asyncio.wait_for(
            client.offload(0, list(example)), client.offload_deadline_s(0)
        )
        took = time.perf_counter() - start
    except Exception as exc:
        client.abort()
        raise PreflightError(reason(exc, endpoint)) from None
    # shaped, the shaper knows the upload's time; on a real network it is what the round trip
    # took beyond the edge's compute and one RTT (at most MAX_UPLINK_BPS: loopback is faster
    # than any link worth planning for)
    upload_s = up if client.link is not None else took - edge_s - rtt
    uplink = min(MAX_UPLINK_BPS, 8.0 * sent / upload_s) if upload_s > 0 else MAX_UPLINK_BPS
    return Preflight(rtt, uplink, served, isinstance(stats.get("groups"), dict))


async def ping(endpoint: Endpoint, count: int) -> list[float]:
    """Round trips of ``count`` PINGs on one connection (PreflightError naming why, if the
    edge cannot be reached)."""
    try:
        return await round_trips(endpoint, count, PREFLIGHT_TIMEOUT_S)
    except Exception as exc:
        raise PreflightError(reason(exc, endpoint)) from None


def _v2_fits(doc: dict[str, Any], path: CutTable, cut: int) -> bool:
    """A v2 server's metadata of cut ``cut`` names the device's boundary tensors (and their
    shapes) as inputs and the model's outputs (names, datatypes, shapes) as outputs."""
    inputs, outputs = doc.get("inputs"), doc.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        return False
    row = path.cuts[cut]
    wanted = {BOUNDARY + n: list(s) for n, s in zip(row.boundary, row.boundary_shapes, strict=True)}
    given = {i.get("name"): i.get("shape") for i in inputs if isinstance(i, dict)}
    model = {
        (OUTPUT + n, oip.DATATYPES[m.dtype_name], str(list(m.shape)))
        for n, m in zip(path.output_names, path.outputs, strict=True)
    }
    said = {
        (o.get("name"), o.get("datatype"), str(o.get("shape")))
        for o in outputs
        if isinstance(o, dict)
    }
    return given == wanted and said == model


async def preflight_v2(client: DeviceClient, example: Sequence[Any], pings: int = 3) -> Preflight:
    """Over the Open Inference Protocol: live (and the RTT), then every back half the device
    may ask for — every cut of every path — served with the device's inputs and outputs (and
    the device's fingerprint, where the server says one: coinfer's edge does), then one upload
    at cut 0."""
    endpoint = client.endpoint
    assert endpoint is not None
    paths = [None, *client.exits]
    names = {
        (e, c.index): oip.v2_name(client.model, c.index, e)
        for e in paths
        for c in client.path(e).part.cuts[:-1]
    }
    targets = ["/v2/health/live"] * pings + [f"/v2/models/{n}" for n in names.values()]
    try:
        done = await v2_gets(endpoint, targets, PREFLIGHT_TIMEOUT_S)
    except Exception as exc:
        raise PreflightError(reason(exc, endpoint)) from None
    rtts = [t for t, status, _ in done[:pings] if status == 200]
    if len(rtts) < pings:
        raise PreflightError(f"{endpoint} is not a live v2 server (/v2/health/live)")
    missing, other = [], []
    for ((e, cut), name), (_, status, doc) in zip(names.items(), done[pings:], strict=True):
        if status == 401:
            raise PreflightError(reason(ProtocolError(ErrorCode.UNAUTHORIZED, ""), endpoint))
        if status != 200 or not isinstance(doc, dict):
            missing.append(name)
            continue
        path = client.path(e).part
        params = doc.get("parameters")
        said = params.get("fingerprint") if isinstance(params, dict) else None
        same = said is None or said == path.fingerprint.hex()
        if not (same and _v2_fits(doc, path, cut)):
            other.append(name)
    if missing:
        raise PreflightError(
            f"{endpoint} does not serve {', '.join(missing[:4])}"
            f"{' ...' if len(missing) > 4 else ''}: serve every cut's back half (coinfer serve "
            f"--http-port, or the exported backs: docs/deploy.md)"
        )
    if other:
        raise PreflightError(
            f"{endpoint}'s {', '.join(other[:4])} is not this device's model (other weights, "
            f"inputs or outputs): serve the same model, or export the backs of the same one"
        )
    served = {client.model: {"v2": sorted(names.values())}}
    return await _measure_upload(client, example, statistics.median(rtts), served, {})
