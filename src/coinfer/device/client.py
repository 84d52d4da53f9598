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
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from coinfer.device.endpoint import Endpoint
from coinfer.device.records import FrameRecord
from coinfer.device.runners import Runner
from coinfer.device.shaping import ShapedLink
from coinfer.device.streams import open_stream, read_message
from coinfer.device.v2_exchange import (
    check_response,
    infer_request,
    max_response_bytes,
    read_response,
)
from coinfer.errors import BadValueError
from coinfer.graph.types import CutTable, TensorMeta
from coinfer.latency.link import Link
from coinfer.policies.types import Action
from coinfer.wire.messages import Infer, InferResult, encode, raise_for_error
from coinfer.wire.protocol import ErrorCode, Kind, Limits, Message, ProtocolError
from coinfer.wire.tensors import CODECS, QUANTS, compressed_bound, decode_tensors, encode_tensors

if TYPE_CHECKING:
    from coinfer.assembly import DeviceSetup
    from coinfer.graph.partitioning import Partitioning

CONNECT_TIMEOUT_S = 2.0  # what an offload's deadline allots to the TCP (and TLS) connection
CLOSE_WAIT_S = 1.0  # a graceful close waits this long at most, then the connection is aborted
# an edge's reported compute time may exceed what the device measured by clock noise only
EDGE_TIME_SLACK_S = 0.005
EDGE_TIME_SLACK = 0.01

Reply = TypeVar("Reply")
Offload = tuple[list[Any], float, float, float, int]  # outputs, up, edge, down, sent


@dataclass(frozen=True)
class ClientOptions:
    """How a device talks to its edge, checked on creation (the device's mirror of the edge's
    ``ServerOptions``): the boundary's codec and quantisation, how long the edge has from the
    end of an upload to its whole reply, what a reply may announce, whether the device's time
    is padded to its emulated class, and how many frames' outputs are kept."""

    codec: str = "none"
    quant: str = "none"
    edge_timeout_s: float = 5.0
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    limits: Limits = field(default_factory=Limits)
    emulate: bool = True  # False: the device is this host, its times as measured
    keep_outputs: int | None = None  # the last this many frames' outputs (None: all)

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise BadValueError(f"--codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if self.quant not in QUANTS:
            raise BadValueError(f"--quant must be one of {', '.join(QUANTS)}, not {self.quant!r}")
        for name, value in (
            ("edge timeout", self.edge_timeout_s),
            ("connect timeout", self.connect_timeout_s),
        ):
            if not (math.isfinite(value) and value > 0):
                raise BadValueError(f"the {name} must be a positive number of seconds, got {value}")


@dataclass(frozen=True)
class _Path:
    """What the device runs for one exit (None: the whole model): its partitioning, the
    emulated time of every cut's front, what the edge's reply must hold, and what computes
    the device's share (torch, or a bundle in ONNX Runtime)."""

    part: CutTable
    front_s: list[float]
    reply_limits: Limits
    runner: Runner


def _torch_runner(part: CutTable) -> Runner:
    """The default: torch's halves (imported here, so a bundle's device never loads torch);
    a client given no runner holds a torch ``Partitioning``."""
    from coinfer.device.torch_runner import TorchRunner

    return TorchRunner(cast("Partitioning", part))


class DeviceClient:
    """One device: ``await frame(i, inputs, action)``; the model is split as ``part`` is, and
    the device's time per front is padded to ``front_s`` (its emulated class).

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
        part: CutTable,
        front_s: Sequence[float],
        endpoint: Endpoint | None,
        link: Link | None = None,
        options: ClientOptions | None = None,
        exits: Mapping[int, tuple[CutTable, Sequence[float]]] | None = None,
        runners: Mapping[int | None, Runner] | None = None,
    ) -> None:
        self.model = model
        self.part = part
        self.endpoint = endpoint
        self.link = link
        self.options = options = options or ClientOptions()
        compressed = options.codec != "none" or options.quant != "none"
        if endpoint is not None and endpoint.protocol == "v2" and compressed:
            raise BadValueError(
                "the Open Inference Protocol carries raw tensors: --codec and --quant go with "
                "the native wire (--protocol native)"
            )
        self._paths: dict[int | None, _Path] = {}
        for e, (path, front) in [(None, (part, front_s)), *(exits or {}).items()]:
            if len(front) != len(path.cuts):
                what = "the model" if e is None else f"exit {e}"
                raise ValueError(f"{what}: need the emulated time of every cut's front")
            reply_bytes = sum(compressed_bound(m.nbytes) for m in path.outputs)
            # a reply larger than the model's outputs could ever be is refused before it is read
            limits = options.limits
            reply = Limits(
                limits.max_header_bytes,
                min(limits.max_payload_bytes, reply_bytes),
                limits.max_tensors,
                limits.max_dims,
            )
            runner = (runners or {}).get(e) or _torch_runner(path)
            self._paths[e] = _Path(path, list(front), reply, runner)
            path.fingerprint  # noqa: B018 (hashed now, not inside an offload's deadline)
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._next_id = 0
        self.shaper = ShapedLink(link, time.monotonic())
        # each frame's outputs, flat as they travelled (the last ``keep_outputs`` of them: a long
        # deployment keeps what it writes out, not every answer in memory)
        self.outputs: collections.deque[list[Any]] = collections.deque(maxlen=options.keep_outputs)
        self.reconnects = 0  # requests sent again because the edge had closed an idle connection

    @classmethod
    def for_setup(
        cls,
        setup: DeviceSetup,
        endpoint: Endpoint | None,
        link: Link | None = None,
        options: ClientOptions | None = None,
    ) -> DeviceClient:
        """The device of ``setup`` (its model, every exit's path, its class's front times)."""
        return cls(
            setup.model.name,
            setup.model.part,
            setup.front_s,
            endpoint,
            link,
            options,
            exits=setup.exit_halves(),
            runners=setup.model.runners or None,
        )

    @property
    def exits(self) -> list[int]:
        """The exits this device can run to (empty for a model with one exit)."""
        return [e for e in self._paths if e is not None]

    def path(self, exit: int | None) -> _Path:
        if exit not in self._paths:
            have = f"exits {self.exits} or None" if self.exits else "None (one exit)"
            raise ValueError(f"exit {exit!r}: this model has {have}")
        return self._paths[exit]

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is not None and (self._conn[0].at_eof() or self._conn[1].is_closing()):
            self.abort()  # the edge closed it meanwhile (idle, evicted): start afresh
        if self._conn is None:
            if self.endpoint is None:
                raise ConnectionError("no edge configured")
            # bounded by the offload's one deadline, not a timer of its own: with several
            # devices on one event loop, a connection made while another device computed its
            # front would otherwise count the other's compute as connecting
            self._conn = await open_stream(self.endpoint)
        return self._conn

    def abort(self) -> None:
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
        if not self.options.emulate:
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
        return self.options.connect_timeout_s + 2 * (up + down) + self.options.edge_timeout_s

    async def _exchange(
        self,
        head: bytes,
        payload: bytes | memoryview,
        read: Callable[[asyncio.StreamReader], Awaitable[Reply]],
    ) -> tuple[Reply, float, float]:
        """Send a request at the link's pace and ``read`` its reply within the edge's timeout
        (from the upload's end); the reply, the upload's seconds and when its last byte went.
        A reused connection the edge had closed meanwhile (its idle timeout, or room made for
        others) is tried once more on a fresh one."""
        reused = self._conn is not None
        for attempt in range(2):
            reader, writer = await self._connect()
            try:
                uplink_s = await self.shaper.send(writer, head, payload)
                sent_at = self.shaper.last_write_at  # the edge cannot have started before this
                async with asyncio.timeout(self.options.edge_timeout_s):
                    return await read(reader), uplink_s, sent_at
            except ConnectionError:
                if not reused or attempt:
                    raise
                self.abort()
                self.reconnects += 1
        raise ConnectionError("the edge closed the connection")  # (the loop returns or raises)

    async def offload(self, cut: int, boundary: Sequence[Any], exit: int | None = None) -> Offload:
        """The back half of ``cut`` on the edge: outputs, upload, edge, download seconds and the
        bytes sent (ProtocolError, ConnectionError, TimeoutError when it fails)."""
        self._next_id += 1
        request_id = self._next_id
        path = self.path(exit)
        arrays = path.runner.to_wire(boundary)
        if self.endpoint is not None and self.endpoint.protocol == "v2":
            return await self._offload_v2(cut, arrays, exit)
        metas, payload = encode_tensors(arrays, self.options.codec, self.options.quant)
        token = self.endpoint.token if self.endpoint else None
        request = Infer(request_id, self.model, cut, exit, path.part.fingerprint, metas, token)
        head = encode(request, payload_len=len(payload))

        async def read(reader: asyncio.StreamReader) -> Message:
            msg = await read_message(reader, path.reply_limits)
            if msg is None:
                raise ConnectionError("the edge closed the connection")
            return msg

        msg, uplink_s, sent_at = await self._exchange(head, payload, read)
        arrived = time.monotonic()
        arrays, edge_s = check_result(
            msg, request_id, path.part.outputs, path.reply_limits, arrived - sent_at
        )
        outputs = path.runner.from_wire(arrays)
        downlink_s = await self.shaper.receive(len(msg.payload), arrived)
        sent = len(head) + len(payload)
        return outputs, uplink_s, edge_s, downlink_s, sent

    async def _offload_v2(self, cut: int, arrays: list[np.ndarray], exit: int | None) -> Offload:
        """The same offload over the Open Inference Protocol v2 (``device.v2_exchange``)."""
        path = self.path(exit)
        assert self.endpoint is not None
        head, blobs = infer_request(
            path.part, self.model, cut, exit, arrays, self.endpoint.host, self.endpoint.token
        )
        payload = b"".join(blobs)
        most = max_response_bytes(path.part.outputs)

        async def read(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
            return await read_response(reader, most)

        (status, headers, body), uplink_s, sent_at = await self._exchange(head, payload, read)
        arrived = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            self.abort()
        arrays, edge_s = check_response(
            status, headers, body, path.part, path.reply_limits, arrived - sent_at
        )
        downlink_s = await self.shaper.receive(len(body), arrived)
        return path.runner.from_wire(arrays), uplink_s, edge_s, downlink_s, len(head) + len(payload)

    async def frame(self, index: int, x: Sequence[Any], action: Action) -> FrameRecord:
        """One frame at ``action``'s cut (of its exit's path): the front here, the back on the
        edge, or here too when the edge fails it."""
        cut, exit = action.cut, action.exit
        path = self.path(exit)
        if not 0 <= cut <= path.part.last:
            raise ValueError(f"cut {cut}: 0..{path.part.last} exist")
        t0 = time.monotonic()
        boundary = path.runner.front(cut, x)
        device_s = await self._emulate_device(t0, path.front_s[cut])
        started = t0 - self.shaper.started
        if cut == path.part.last:
            self.outputs.append(path.runner.at_last_cut(boundary))
            return FrameRecord(
                index,
                cut,
                False,
                False,
                None,
                device_s,
                0.0,
                0.0,
                0.0,
                time.monotonic() - t0,
                0,
                started,
                exit,
            )
        t_off = time.monotonic()
        try:
            nbytes = sum(t.nbytes for t in boundary)
            async with asyncio.timeout(self.offload_deadline_s(nbytes, exit)):
                outputs, up, edge_s, down, sent = await self.offload(cut, boundary, exit)
            self.outputs.append(outputs)
            return FrameRecord(
                index,
                cut,
                True,
                False,
                None,
                device_s,
                up,
                edge_s,
                down,
                time.monotonic() - t0,
                sent,
                started,
                exit,
            )
        except Exception as exc:  # whatever the edge did (or did not do), the frame is answered
            self.abort()  # whatever is in flight is abandoned; reconnect next frame
            waited = time.monotonic() - t_off
            t_back = time.monotonic()
            outputs = path.runner.finish(cut, x, boundary)
            self.outputs.append(outputs)
            await self._emulate_device(t_back, path.front_s[-1] - path.front_s[cut])
            device_s += time.monotonic() - t_back
            return FrameRecord(
                index,
                cut,
                False,
                True,
                describe_failure(exc),
                device_s,
                0.0,
                0.0,
                0.0,
                time.monotonic() - t0,
                0,
                started,
                exit,
                waited,
            )


def check_result(
    msg: Message,
    request_id: int,
    expected: Sequence[TensorMeta],
    limits: Limits,
    waited_s: float,
) -> tuple[list[np.ndarray], float]:
    """The outputs and edge time of a reply, if it is the RESULT of ``request_id`` with
    exactly the ``expected`` outputs and an edge time the device could have waited for;
    ProtocolError naming what is wrong otherwise."""
    raise_for_error(msg.kind, msg.header)
    if msg.kind is not Kind.RESULT:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"the edge answered {msg.kind.name}, not RESULT")
    result = InferResult.parse(msg.header, request_id)
    slack = EDGE_TIME_SLACK_S + EDGE_TIME_SLACK * waited_s
    if not (math.isfinite(result.edge_s) and 0.0 <= result.edge_s <= waited_s + slack):
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"impossible edge_s {result.edge_s!r}: the reply came "
            f"{waited_s:.4f} s after the upload",
        )
    outputs = decode_tensors(result.tensors, msg.payload, limits, expected, "the device's model")
    return outputs, result.edge_s


def describe_failure(exc: BaseException) -> str:
    """Why an offload failed, for the frame's record."""
    if isinstance(exc, TimeoutError):
        return "edge timeout"
    if isinstance(exc, ProtocolError):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens at the edge's address (is coinfer serve up?)"
    if isinstance(exc, ConnectionResetError):
        return "the edge reset the connection"
    if isinstance(exc, ConnectionError):
        return "the edge closed the connection"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
