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
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx

from coinfer.graph.partition import Partitioning
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCostModel
from coinfer.policies.types import Action, Context, Feedback, Policy
from coinfer.runtime.protocol import (
    STREAM_LIMIT,
    Kind,
    Limits,
    ProtocolError,
    decode_tensors,
    encode_tensors,
    pack,
    read_message,
    tensors_of,
)
from coinfer.runtime.shaping import ShapedLink


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


class DeviceClient:
    """One device: ``await run(policy, frames)``; the model is split as ``part`` is, and the
    device's time per front is padded to ``device_front_s`` (its emulated class)."""

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
    ) -> None:
        if len(device_front_s) != len(part.cuts):
            raise ValueError("need the emulated device time of every cut's front")
        self.model = model
        self.part = part
        self.device_front_s = list(device_front_s)
        self.edge = edge
        self.link = link
        self.codec, self.quant = codec, quant
        self.token = token
        self.edge_timeout_s = edge_timeout_s
        self.limits = limits or Limits()
        self._halves: dict[int, tuple[fx.GraphModule, fx.GraphModule]] = {}
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._next_id = 0
        self.shaper = ShapedLink(link, time.monotonic())
        self.outputs: list[list[torch.Tensor]] = []

    def halves(self, cut: int) -> tuple[fx.GraphModule, fx.GraphModule]:
        if cut not in self._halves:
            self._halves[cut] = self.part.split(cut)
        return self._halves[cut]

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is None:
            if self.edge is None:
                raise ConnectionError("no edge configured")
            connect = asyncio.open_connection(*self.edge, limit=STREAM_LIMIT)
            self._conn = await asyncio.wait_for(connect, 1.0)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _emulate_device(self, started: float, cut: int, extra_s: float = 0.0) -> float:
        """Wait until the emulated device would have finished (never less than it took)."""
        target = started + self.device_front_s[cut] + extra_s
        wait = target - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return time.monotonic() - started

    async def _offload(
        self, cut: int, boundary: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], float, float, float, int]:
        reader, writer = await self._connect()
        self._next_id += 1
        metas, payload = encode_tensors(boundary, self.codec, self.quant)
        header: dict[str, Any] = {"id": self._next_id, "model": self.model, "cut": cut,
                                  "exit": None, "tensors": metas}  # fmt: skip
        if self.token is not None:
            header["token"] = self.token
        head = pack(Kind.INFER, header, b"", payload_len=len(payload))
        uplink_s = await self.shaper.send(writer, head, payload)
        # the edge has edge_timeout_s from the end of the upload to the whole reply
        async with asyncio.timeout(self.edge_timeout_s):
            msg = await read_message(reader, self.limits, self.edge_timeout_s)
        arrived = time.monotonic()
        if msg is None:
            raise ConnectionError("the edge closed the connection")
        if msg.kind is Kind.ERROR:
            raise ProtocolError.from_reply(msg.header)
        outputs = decode_tensors(msg.header.get("tensors"), msg.payload, self.limits)
        downlink_s = await self.shaper.receive(len(msg.payload), arrived)
        sent = len(head) + len(payload)
        return outputs, uplink_s, float(msg.header.get("edge_s", 0.0)), downlink_s, sent

    async def frame(self, index: int, x: Sequence[torch.Tensor], action: Action) -> FrameRecord:
        cut = action.cut
        t0 = time.monotonic()
        front, back = self.halves(cut)
        with torch.no_grad():
            boundary = list(front(*x))
        device_s = await self._emulate_device(t0, cut)
        if cut == self.part.last:
            self.outputs.append(boundary)
            return FrameRecord(index, cut, False, False, None, device_s, 0.0, 0.0, 0.0,
                               time.monotonic() - t0, 0, t0 - self.shaper.started)  # fmt: skip
        t_off = time.monotonic()
        try:
            # the whole exchange: twice the ideal shaped upload, then the edge's own timeout
            nbytes = sum(t.numel() * t.element_size() for t in boundary)
            upload = self.link.upload_seconds(nbytes, self.shaper.now()) if self.link else 0.0
            timeout = 2 * upload + self.edge_timeout_s + 1.0
            async with asyncio.timeout(timeout):
                outputs, up, edge_s, down, sent = await self._offload(cut, boundary)
            self.outputs.append(outputs)
            return FrameRecord(index, cut, True, False, None, device_s, up, edge_s, down,
                               time.monotonic() - t0, sent, t0 - self.shaper.started)  # fmt: skip
        except (OSError, TimeoutError, ProtocolError, asyncio.IncompleteReadError) as exc:
            await self.close()  # whatever is in flight is abandoned; reconnect next frame
            waited = time.monotonic() - t_off
            t_back = time.monotonic()
            with torch.no_grad():
                outputs = tensors_of(back(*boundary))
            self.outputs.append(outputs)
            back_s = self.device_front_s[-1] - self.device_front_s[cut]
            target = t_back + back_s
            if target > time.monotonic():
                await asyncio.sleep(target - time.monotonic())
            device_s += time.monotonic() - t_back
            return FrameRecord(index, cut, False, True, _describe(exc), device_s, waited, 0.0,
                               0.0, time.monotonic() - t0, 0, t0 - self.shaper.started)  # fmt: skip

    async def run(
        self,
        policy: Policy,
        frames: Sequence[Sequence[torch.Tensor]],
        key_weights: Sequence[float] | None = None,
        on_frame: Callable[[FrameRecord], None] | None = None,
        started: float | None = None,
        deadline_s: float | None = None,
    ) -> list[FrameRecord]:
        """The frames in turn (stopping early once ``deadline_s`` seconds have passed since
        ``started``, a ``time.monotonic()`` stamp that is also the link trace's time 0)."""
        records = []
        self.shaper = ShapedLink(self.link, time.monotonic() if started is None else started)
        try:
            for i, x in enumerate(frames):
                if deadline_s is not None and self.shaper.now() >= deadline_s:
                    break
                weight = key_weights[i] if key_weights is not None else 0.2
                now = self.shaper.now()
                extra = {"bandwidth_bps": self.link.uplink.at(now)} if self.link else {}
                ctx = Context(frame=i, key_weight=weight, time_s=now, extra=extra)
                action = policy.select(ctx)
                if not 0 <= action.cut <= self.part.last:
                    raise ValueError(f"policy chose cut {action.cut}: 0..{self.part.last} exist")
                record = await self.frame(i, x, action)
                policy.update(action, feedback_of(record))
                records.append(record)
                if on_frame is not None:
                    on_frame(record)
        finally:
            await self.close()
        return records


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "edge timeout"
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


def summary(records: Sequence[FrameRecord]) -> dict[str, Any]:
    frames = len(records)
    totals = [r.total_s for r in records]
    return {
        "frames": frames,
        "offloaded": sum(r.offloaded for r in records),
        "fallbacks": sum(r.fallback for r in records),
        "mean_latency_s": sum(totals) / frames if frames else float("nan"),
        "p95_latency_s": sorted(totals)[int(0.95 * (frames - 1))] if frames else float("nan"),
        "errors": sorted({r.error for r in records if r.error}),
        "cuts": {
            str(c): sum(r.cut == c for r in records) for c in sorted({r.cut for r in records})
        },
    }


def write_log(records: Sequence[FrameRecord], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for r in records:
            fh.write(json.dumps(asdict(r)) + "\n")


async def set_edge_slowdown(
    address: tuple[str, int], slowdown: float, token: str | None = None
) -> float:
    """Ask a running edge server to emulate an edge ``slowdown`` times slower (CONTROL)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        header: dict[str, Any] = {"id": 0, "slowdown": slowdown}
        if token is not None:
            header["token"] = token
        writer.write(pack(Kind.CONTROL, header))
        await writer.drain()
        msg = await read_message(reader, Limits(), 10.0)
        if msg is None:
            raise ConnectionError("the edge closed the connection")
        if msg.kind is Kind.ERROR:
            raise ProtocolError.from_reply(msg.header)
        return float(msg.header["slowdown"])
    finally:
        writer.close()
