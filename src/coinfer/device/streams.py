"""The device's side of a connection: messages read off an asyncio stream by the wire's one
parser (``wire.parser``), and one-shot requests on a connection of their own."""

from __future__ import annotations

import asyncio

from coinfer.device.endpoint import Endpoint
from coinfer.wire.parser import Admission, Event, Head, Parser
from coinfer.wire.protocol import STREAM_LIMIT, ErrorCode, Limits, Message, ProtocolError

# what a device expects back from a request that is not an INFER (PONG, STATS, CONTROL, SYNC):
# a header and no payload, so an edge announcing one is refused before a byte is allocated
REPLY_WITHOUT_PAYLOAD = Limits(max_payload_bytes=0)


async def open_stream(
    endpoint: Endpoint, limit: int = STREAM_LIMIT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the edge (TLS when the endpoint says so)."""
    host, port = endpoint.address
    return await asyncio.open_connection(
        host,
        port,
        limit=limit,
        ssl=endpoint.tls,
        server_hostname=host if endpoint.tls else None,
    )


async def _exactly(reader: asyncio.StreamReader, nbytes: int) -> bytes:
    try:
        return await reader.readexactly(nbytes)
    except asyncio.IncompleteReadError:
        raise ProtocolError(ErrorCode.BAD_FRAME, "connection closed mid-message", True) from None


async def _fill(reader: asyncio.StreamReader, parser: Parser) -> Message:
    """Feed the parser until a message is whole (every payload is taken: the caller checks what
    it asked for); a fatal error, or a stream that ends mid-message, as ProtocolError. Each part
    is read whole (``readexactly``: no loop of partial reads); the payload is copied once more,
    into the writable buffer its tensors are views of, and never zero-filled first."""
    while True:
        buffer = parser.buffer()
        part = await _exactly(reader, len(buffer))
        buffer[:] = part
        event = parser.feed(len(part))
        if isinstance(event, Head):
            event = await _take_payload(reader, parser, event.payload_len)
        if isinstance(event, ProtocolError):
            raise event
        if isinstance(event, Message):
            return event


async def _take_payload(reader: asyncio.StreamReader, parser: Parser, payload_len: int) -> Event:
    """The payload, read whole and handed to the parser as its buffer, already filled."""
    payload = bytearray(await _exactly(reader, payload_len))
    event: Event = parser.decide(Admission(payload))
    if event is None:  # the payload's bytes are already in its buffer
        event = parser.feed(payload_len)
    return event


async def read_message(
    reader: asyncio.StreamReader, limits: Limits, timeout_s: float | None = None
) -> Message | None:
    """The next message, or None at a clean end of stream. An idle peer may wait as long as it
    likes; once a message's first byte has arrived, the whole message must follow within
    ``timeout_s`` (a peer that stalls or trickles gets a fatal TIMEOUT), and a peer that closes
    mid-message a fatal BAD_FRAME. A header that is not msgpack, or not a map, is BAD_HEADER."""
    first = await reader.read(1)
    if not first:
        return None
    parser = Parser(limits)
    parser.buffer()[:1] = first
    started = parser.feed(1)
    assert started is None  # one byte never completes a prefix
    if timeout_s is None:
        return await _fill(reader, parser)
    try:
        async with asyncio.timeout(timeout_s):
            return await _fill(reader, parser)
    except TimeoutError:
        raise ProtocolError(
            ErrorCode.TIMEOUT, f"no whole message within {timeout_s:g} s", True
        ) from None


async def request_once(
    endpoint: Endpoint, message: bytes, limits: Limits, timeout_s: float = 10.0
) -> Message:
    """One request on a connection of its own and its reply, all within ``timeout_s``
    (TimeoutError past it; ConnectionError if the edge closes without a reply)."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await open_stream(endpoint)
        try:
            writer.write(message)
            await writer.drain()
            reply = await read_message(reader, limits)
        finally:
            writer.transport.abort()
    if reply is None:
        raise ConnectionError("the edge closed the connection")
    return reply
