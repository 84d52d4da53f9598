"""Userspace link shaping: a paced sender and a delayed receiver driven by a bandwidth trace.

The sender writes in chunks and never gets ahead of the link: each chunk is released at the
moment an ideal link running the trace from the transfer's start (plus the one-way propagation
delay, RTT / 2) would have delivered it whole — an absolute schedule, so a late wake-up is not
carried into the next chunk, and the peer holds the whole message exactly when the ideal link
would have delivered it. This is the portable shaping of
DESIGN §5; it needs no privileges and no kernel support (this machine has no netem).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from coinfer.latency.link import Link

CHUNK_BYTES = 16 * 1024
CHUNK_SECONDS = 0.002  # on fast links a chunk is 2 ms of the link, so sleeps stay few
MIN_SLEEP_S = 0.0005  # closer than this to the schedule: write now (it is absolute anyway)


@dataclass
class ShapedLink:
    """``link`` replayed from ``started`` (a ``time.monotonic()`` stamp: trace time 0);
    ``link=None`` sends as fast as the socket takes it (unshaped)."""

    link: Link | None
    started: float
    chunk_bytes: int = CHUNK_BYTES
    # when the last write of the last send began (monotonic): the peer cannot have had the
    # whole message before it, whatever this process was doing around it
    last_write_at: float = 0.0

    def now(self) -> float:
        return time.monotonic() - self.started

    async def send(
        self, writer: asyncio.StreamWriter, head: bytes, body: bytes | memoryview = b""
    ) -> float:
        """Write ``head`` then ``body`` at the link's pace; the seconds it took, propagation
        included."""
        t0 = time.monotonic()
        if self.link is None:
            self.last_write_at = t0
            writer.write(head)  # two writes, no join: the body is never copied here
            writer.write(body)
            await writer.drain()
            return time.monotonic() - t0
        data = head + bytes(body)
        start = t0 - self.started
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            rate = self.link.uplink.at(start + (time.monotonic() - t0))
            size = max(self.chunk_bytes, int(rate * CHUNK_SECONDS / 8))
            chunk = view[sent : sent + size]
            sent += len(chunk)
            due = t0 + self.link.one_way_s + self.link.uplink.transfer_seconds(8.0 * sent, start)
            delay = due - time.monotonic()
            if delay > MIN_SLEEP_S:
                await asyncio.sleep(delay)
            self.last_write_at = time.monotonic()
            writer.write(chunk)
            await writer.drain()
        return time.monotonic() - t0

    async def receive(self, nbytes: int, arrived: float) -> float:
        """Hold a reply of ``nbytes`` that reached this host at ``arrived`` (monotonic) until
        the shaped downlink would have delivered it; the seconds the download took."""
        if self.link is None:
            return time.monotonic() - arrived
        down = self.link.downlink or self.link.uplink
        start = arrived - self.started
        done = arrived + self.link.one_way_s + down.transfer_seconds(8.0 * nbytes, start)
        wait = done - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return max(done, time.monotonic()) - arrived
