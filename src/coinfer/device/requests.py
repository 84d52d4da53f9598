"""One-shot requests to an edge, each on a connection of its own: PING round trips, its
statistics (STATS) and a run-time slowdown (CONTROL) — what ``coinfer ping``/``stats``, the
preflight and the demos ask."""

from __future__ import annotations

import asyncio
import time

from coinfer.device.endpoint import Endpoint
from coinfer.device.streams import (
    REPLY_WITHOUT_PAYLOAD,
    open_stream,
    read_message,
    request_once,
)
from coinfer.wire.messages import (
    Control,
    ControlReply,
    Ping,
    StatsReply,
    StatsRequest,
    WireMessage,
    encode,
    raise_for_error,
)
from coinfer.wire.protocol import ErrorCode, Kind, Message, ProtocolError


async def ask_edge(endpoint: Endpoint, request: WireMessage, timeout_s: float = 10.0) -> Message:
    """One request without a payload on a connection of its own; the reply (ProtocolError for
    an ERROR, TimeoutError past ``timeout_s``)."""
    reply = await request_once(endpoint, encode(request), REPLY_WITHOUT_PAYLOAD, timeout_s)
    raise_for_error(reply.kind, reply.header)
    return reply


async def set_edge_slowdown(endpoint: Endpoint, slowdown: float) -> float:
    """Ask a running edge server to emulate an edge ``slowdown`` times slower (CONTROL)."""
    reply = await ask_edge(endpoint, Control(slowdown, token=endpoint.token))
    return ControlReply.parse(reply.header).slowdown


async def edge_stats(endpoint: Endpoint, timeout_s: float = 10.0) -> dict:
    """A running edge server's statistics (STATS)."""
    reply = await ask_edge(endpoint, StatsRequest(token=endpoint.token), timeout_s)
    return StatsReply.parse(reply.header).stats


async def round_trips(endpoint: Endpoint, count: int, timeout_s: float) -> list[float]:
    """``count`` PING round trips on one connection (its set-up not counted)."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await open_stream(endpoint)
        try:
            times = []
            for i in range(count):
                start = time.perf_counter()
                writer.write(encode(Ping(i)))
                await writer.drain()
                reply = await read_message(reader, REPLY_WITHOUT_PAYLOAD)
                if reply is None:
                    raise ConnectionError("the edge closed the connection")
                raise_for_error(reply.kind, reply.header)
                if reply.kind is not Kind.PONG:
                    raise ProtocolError(ErrorCode.BAD_FRAME, f"PING answered by {reply.kind.name}")
                times.append(time.perf_counter() - start)
        finally:
            writer.transport.abort()
    return times
