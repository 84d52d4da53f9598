"""The device client (`coinfer run`): front halves here, back halves on the edge, a policy in
the loop, and every frame answered even when the edge is slow, wrong or gone.

Per frame: the policy picks a cut; the device runs the front for real on this host and waits
out the rest of its emulated device class's time (a device slower than this host); the
boundary goes to the edge over the shaped link; the reply comes back over the shaped downlink.
If the edge cannot be reached, answers with an error, or is later than ``edge_timeout_s``, the
device runs the back half itself (a *fallback*): the frame is never lost, and the policy learns
what offloading cost that frame.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from coinfer.graph.outputs import output_tensors
from coinfer.graph.partition import Partitioning
from coinfer.graph.types import TensorMeta
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCostModel
from coinfer.output import percentile
from coinfer.policies.types import Action, Feedback
from coinfer.runtime.protocol import (
    STREAM_LIMIT,
    ErrorCode,
    Kind,
    Limits,
    Message,
    ProtocolError,
    pack,
    read_message,
    request_once,
)
from coinfer.runtime.shaping import ShapedLink
from coinfer.runtime.tensors import compressed_bound, decode_tensors, encode_tensors

CONNECT_TIMEOUT_S = 2.0  # what an offload's deadline allots to the TCP (and TLS) connection
CLOSE_WAIT_S = 1.0  # a graceful close waits this long at most, then the connection is aborted
# an edge's reported compute time may exceed what the device measured by clock noise only
EDGE_TIME_SLACK_S = 0.005
EDGE_TIME_SLACK = 0.01


@dataclass(frozen=True)
class _Path:
    """What the device runs for one exit (None: the whole model): its partitioning, the
    emulated time of every cut's front, and what the edge's reply must hold."""

    part: Partitioning
    front_s: list[float]
    reply_limits: Limits


@dataclass(frozen=True)
class FrameRecord:
    frame: int
    cut: int
    offloaded: bool
    fallback: bool
    error: str | None
    device_s: float
    uplink_s: float
    edge_s: float
    downlink_s: float
    total_s: float
    bytes_sent: int
    started_s: float
    exit: int | None = None


class DeviceClient:
    """One device: ``await run(policy, frames)``; the model is split as ``part`` is, and the
    device's time per front is padded to ``device_front_s`` (its emulated class).

    The device trusts nothing the edge sends: a reply must be a RESULT for the request it
    sent, carry exactly the model's outputs (count, shapes, dtypes: the device knows them from
    its own partition) in at most their size, and an edge time that is a finite, non-negative
    number no longer than the device itself waited; anything else is a named error and the
    frame falls back. Each offload has one hard deadline — connect, upload, reply and download
    — after which the connection is aborted, never waited on.
    """

    def __init__(
        self,
        model: str,
        part: Partitioning,
        device_front_s: Sequence[float],
        edge: tuple[str, int] | None,
        link: Link | None = None,
        codec: str = "none",
        quant: str = "none",
        token: str | None = None,
        edge_timeout_s: float = 5.0,
        limits: Limits | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        exits: Mapping[int, tuple[Partitioning, Sequence[float]]] | None = None,
        emulate: bool = True,
        keep_outputs: int | None = None,
    ) -> None:
        if len(device_front_s) != len(part.cuts):
            raise ValueError("need the emulated device time of every cut's front")
        for number, (path, front) in (exits or {}).items():
            if len(front) != len(path.cuts):
                raise ValueError(f"exit {number}: need the emulated time of every cut's front")
        if not (math.isfinite(edge_timeout_s) and edge_timeout_s > 0):
            raise ValueError(f"the edge timeout must be a positive number of seconds, got "
                             f"{edge_timeout_s}")  # fmt: skip
        self.model = model
        self.part = part
        self.device_front_s = list(device_front_s)
        self.edge = edge
        self.link = link
        self.codec, self.quant = codec, quant
        self.token = token
        self.edge_timeout_s = edge_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.tls = tls
        self.emulate = emulate  # False: the device is this host, its times as measured
        base = limits or Limits()
        self._paths: dict[int | None, _Path] = {}
        every: list[tuple[int | None, tuple[Partitioning, Sequence[float]]]] = [
            (None, (part, device_front_s)),
            *(exits or {}).items(),
        ]
        for e, (path, front) in every:
            reply_bytes = sum(compressed_bound(m.nbytes) for m in path.outputs)
            # a reply larger than the model's outputs could ever be is refused before it is read
            reply = Limits(base.max_header_bytes, min(base.max_payload_bytes, reply_bytes),
                           base.max_tensors, base.max_dims)  # fmt: skip
            self._paths[e] = _Path(path, list(front), reply)
            path.fingerprint  # noqa: B018 (hashed now, not inside an offload's deadline)
        self._halves: dict[tuple[int | None, int], tuple[fx.GraphModule, fx.GraphModule]] = {}
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._next_id = 0
        self.shaper = ShapedLink(link, time.monotonic())
        # each frame's outputs, flat as they travelled (the last ``keep_outputs`` of them: a long
        # deployment keeps what it writes out, not every answer in memory)
        self.outputs: collections.deque[list[torch.Tensor]] = collections.deque(maxlen=keep_outputs)
        self.rejected_feedback = 0  # frames whose measurements a policy was not shown
        self.reconnects = 0  # requests sent again because the edge had closed an idle connection

    @property
    def exits(self) -> list[int]:
        """The exits this device can run to (empty for a model with one exit)."""
        return [e for e in self._paths if e is not None]

    def path(self, exit: int | None) -> _Path:
        if exit not in self._paths:
            have = f"exits {self.exits} or None" if self.exits else "None (one exit)"
            raise ValueError(f"exit {exit!r}: this model has {have}")
        return self._paths[exit]

    def structured(self, outputs: Sequence[torch.Tensor], exit: int | None = None) -> Any:
        """A frame's flat outputs as the model returns them (a dict, tuples, nested)."""
        structure = self.path(exit).part.structure
        return structure.rebuild(outputs) if structure is not None else list(outputs)

    def halves(self, cut: int, exit: int | None = None) -> tuple[fx.GraphModule, fx.GraphModule]:
        if (exit, cut) not in self._halves:
            self._halves[(exit, cut)] = self.path(exit).part.split(cut)
        return self._halves[(exit, cut)]

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is not None and (self._conn[0].at_eof() or self._conn[1].is_closing()):
            self._abort()  # the edge closed it meanwhile (idle, evicted): start afresh
        if self._conn is None:
            if self.edge is None:
                raise ConnectionError("no edge configured")
            # bounded by the offload's one deadline, not a timer of its own: with several
            # devices on one event loop, a connection made while another device computed its
            # front would otherwise count the other's compute as connecting
            host, port = self.edge
            self._conn = await asyncio.open_connection(
                host, port, limit=STREAM_LIMIT, ssl=self.tls,
                server_hostname=host if self.tls else None,
            )  # fmt: skip
        return self._conn

    def _abort(self) -> None:
        """Drop the connection now: nothing in flight is waited for."""
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            writer.transport.abort()

    async def close(self) -> None:
        """Close the connection, waiting at most a second for it to go."""
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            writer.close()
            try:
                async with asyncio.timeout(CLOSE_WAIT_S):
                    await writer.wait_closed()
            except Exception:  # too slow, or already broken: drop it
                writer.transport.abort()

    async def _emulate_device(self, started: float, seconds: float) -> float:
        """Wait until the emulated device would have finished (never less than it took)."""
        if not self.emulate:
            return time.monotonic() - started
        target = started + seconds
        wait = target - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return time.monotonic() - started

    def offload_deadline_s(self, boundary_bytes: int, exit: int | None = None) -> float:
        """The most one offload may take: connect, twice the ideal shaped upload and download,
        and the edge's own timeout."""
        up = down = 0.0
        if self.link is not None:
            now = self.shaper.now()
            up = self.link.upload_seconds(boundary_bytes, now)
            reply = self.path(exit).reply_limits.max_payload_bytes
            down = self.link.download_seconds(reply, now)
        return self.connect_timeout_s + 2 * (up + down) + self.edge_timeout_s

    async def offload(
        self, cut: int, boundary: Sequence[torch.Tensor], exit: int | None = None
    ) -> tuple[list[torch.Tensor], float, float, float, int]:
        self._next_id += 1
        request_id = self._next_id
        path = self.path(exit)
        metas, payload = encode_tensors(boundary, self.codec, self.quant)
        header: dict[str, Any] = {"id": request_id, "model": self.model, "cut": cut,
                                  "exit": exit, "fp": path.part.fingerprint,
                                  "tensors": metas}  # fmt: skip
        if self.token is not None:
            header["token"] = self.token
        head = pack(Kind.INFER, header, b"", payload_len=len(payload))
        reused = self._conn is not None
        for attempt in range(2):
            reader, writer = await self._connect()
            try:
                uplink_s = await self.shaper.send(writer, head, payload)
                sent_at = self.shaper.last_write_at  # the edge cannot have started before this
                # the edge has edge_timeout_s from the end of the upload to the whole reply
                async with asyncio.timeout(self.edge_timeout_s):
                    msg = await read_message(reader, path.reply_limits)
                if msg is None:
                    raise ConnectionError("the edge closed the connection")
                break
            except ConnectionError:
                if not reused or attempt:
                    raise
                # the edge had closed this connection while the device was busy (idle
                # timeout, or making room for others): once more on a fresh one
                self._abort()
                self.reconnects += 1
        arrived = time.monotonic()
        assert msg is not None
        outputs, edge_s = check_result(msg, request_id, path.part.outputs, path.reply_limits,
                                       arrived - sent_at)  # fmt: skip
        downlink_s = await self.shaper.receive(len(msg.payload), arrived)
        sent = len(head) + len(payload)
        return outputs, uplink_s, edge_s, downlink_s, sent

    async def frame(self, index: int, x: Sequence[torch.Tensor], action: Action) -> FrameRecord:
        """One frame at ``action``'s cut (of its exit's path): the front here, the back on the
        edge, or here too when the edge fails it."""
        cut, exit = action.cut, action.exit
        path = self.path(exit)
        if not 0 <= cut <= path.part.last:
            raise ValueError(f"cut {cut}: 0..{path.part.last} exist")
        t0 = time.monotonic()
        front, back = self.halves(cut, exit)
        with torch.no_grad():
            boundary = list(front(*x))
        device_s = await self._emulate_device(t0, path.front_s[cut])
        started = t0 - self.shaper.started
        if cut == path.part.last:
            self.outputs.append(path.part.outputs_at_last_cut(boundary))
            return FrameRecord(index, cut, False, False, None, device_s, 0.0, 0.0, 0.0,
                               time.monotonic() - t0, 0, started, exit)  # fmt: skip
        t_off = time.monotonic()
        try:
            nbytes = sum(t.numel() * t.element_size() for t in boundary)
            async with asyncio.timeout(self.offload_deadline_s(nbytes, exit)):
                outputs, up, edge_s, down, sent = await self.offload(cut, boundary, exit)
            self.outputs.append(outputs)
            return FrameRecord(index, cut, True, False, None, device_s, up, edge_s, down,
                               time.monotonic() - t0, sent, started, exit)  # fmt: skip
        except Exception as exc:  # whatever the edge did (or did not do), the frame is answered
            self._abort()  # whatever is in flight is abandoned; reconnect next frame
            waited = time.monotonic() - t_off
            t_back = time.monotonic()
            with torch.no_grad():
                outputs = output_tensors(back(*boundary))
            self.outputs.append(outputs)
            await self._emulate_device(t_back, path.front_s[-1] - path.front_s[cut])
            device_s += time.monotonic() - t_back
            return FrameRecord(index, cut, False, True, _describe(exc), device_s, waited, 0.0,
                               0.0, time.monotonic() - t0, 0, started, exit)  # fmt: skip


def check_result(
    msg: Message,
    request_id: int,
    expected: Sequence[TensorMeta],
    limits: Limits,
    waited_s: float,
) -> tuple[list[torch.Tensor], float]:
    """The outputs and edge time of a reply, if it is the RESULT of ``request_id`` with
    exactly the ``expected`` outputs and an edge time the device could have waited for;
    ProtocolError naming what is wrong otherwise."""
    if msg.kind is Kind.ERROR:
        raise ProtocolError.from_reply(msg.header)
    if msg.kind is not Kind.RESULT:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"the edge answered {msg.kind.name}, not RESULT")
    answered = msg.header.get("id")
    if not (isinstance(answered, int) and not isinstance(answered, bool)
            and answered == request_id):  # fmt: skip
        text = f"the edge answered request {answered!r}, not {request_id}"
        raise ProtocolError(ErrorCode.BAD_HEADER, text)
    edge_s = msg.header.get("edge_s")
    if not isinstance(edge_s, (int, float)) or isinstance(edge_s, bool):
        raise ProtocolError(ErrorCode.BAD_HEADER, f"edge_s {edge_s!r} is not a number")
    slack = EDGE_TIME_SLACK_S + EDGE_TIME_SLACK * waited_s
    if not (math.isfinite(edge_s) and 0.0 <= edge_s <= waited_s + slack):
        raise ProtocolError(ErrorCode.BAD_HEADER,
                            f"impossible edge_s {edge_s!r}: the reply came {waited_s:.4f} s "
                            f"after the upload")  # fmt: skip
    outputs = decode_tensors(msg.header.get("tensors"), msg.payload, limits, expected,
                             "the device's model")  # fmt: skip
    return outputs, float(edge_s)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "edge timeout"
    if isinstance(exc, ProtocolError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def feedback_of(record: FrameRecord) -> Feedback:
    """What the policy learns: a fallback frame cost its wait on the edge before the device
    finished it, so an edge that is down or slow looks as expensive as it was."""
    if record.fallback:
        return Feedback(record.device_s, record.uplink_s, 0.0, 0.0, 0)
    return Feedback(record.device_s, record.uplink_s, record.edge_s, record.downlink_s,
                    record.bytes_sent)  # fmt: skip


def emulated_front_seconds(part: Partitioning, device: Any, edge: Any) -> list[float]:
    """The device class's predicted time of every cut's front (what the client pads to)."""
    return list(CutCostModel(part, device, edge).device_s)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summary(records: Sequence[FrameRecord]) -> dict[str, Any]:
    """Counts and latencies of a run (latencies null for a run of no frames: strict JSON)."""
    frames = len(records)
    totals = [r.total_s for r in records]
    return {
        "frames": frames,
        "offloaded": sum(r.offloaded for r in records),
        "fallbacks": sum(r.fallback for r in records),
        "mean_latency_s": _finite(float(np.mean(totals))) if frames else None,
        "p50_latency_s": percentile(totals, 50),
        "p95_latency_s": percentile(totals, 95),
        "p99_latency_s": percentile(totals, 99),
        "errors": sorted({r.error for r in records if r.error}),
        "cuts": {
            str(c): sum(r.cut == c for r in records) for c in sorted({r.cut for r in records})
        },
    }


def write_log(records: Sequence[FrameRecord], path: Path) -> None:
    """One strict-JSON line per frame (a non-finite number, which no frame should hold, is
    written as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for r in records:
            row = {k: _finite(v) if isinstance(v, float) else v for k, v in asdict(r).items()}
            fh.write(json.dumps(row, allow_nan=False) + "\n")


async def ask_edge(
    address: tuple[str, int],
    kind: Kind,
    header: dict[str, Any] | None = None,
    token: str | None = None,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """One request without a payload (PING, STATS, CONTROL) on a connection of its own; the
    reply's header (ProtocolError for an ERROR, TimeoutError past ``timeout_s``)."""
    message = {"id": 0, **(header or {})}
    if token is not None:
        message["token"] = token
    msg = await request_once(address, pack(kind, message), Limits(), tls, timeout_s)
    if msg.kind is Kind.ERROR:
        raise ProtocolError.from_reply(msg.header)
    return msg.header


async def set_edge_slowdown(
    address: tuple[str, int],
    slowdown: float,
    token: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> float:
    """Ask a running edge server to emulate an edge ``slowdown`` times slower (CONTROL)."""
    reply = await ask_edge(address, Kind.CONTROL, {"slowdown": slowdown}, token, tls)
    return float(reply["slowdown"])


async def edge_stats(
    address: tuple[str, int], token: str | None = None, tls: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """A running edge server's statistics (STATS)."""
    reply = await ask_edge(address, Kind.STATS, None, token, tls)
    stats = reply.get("stats")
    if not isinstance(stats, dict):
        raise ProtocolError(ErrorCode.BAD_HEADER, "the edge's STATS reply has no stats")
    return stats
