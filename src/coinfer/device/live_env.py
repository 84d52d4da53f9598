"""The live runtime as an Environment (``LiveEnv``): the device side of a real deployment,
driven by the one loop (``coinfer.policies.loop``) like the simulator.

Each step runs one frame for real: the front on this host padded to the emulated device
class, the boundary to the edge over the shaped link, every component measured, and the frame
finished on the device whenever the edge fails it (``DeviceClient.frame``). What the policy
observes is what a device may know: the frame's index and key-frame weight, the time since the
run began, and — for policies that watch the link (Edgent) — the throughput the device really
measured on its uplink, by its own uploads and, when a frame sent nothing, by a probe (the
frame's input sent to the edge's shallowest path, its answer ignored).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from coinfer.device.client import DeviceClient
from coinfer.device.member import RemoteGroup
from coinfer.device.records import FrameRecord, feedback_of
from coinfer.device.shaping import ShapedLink
from coinfer.graph.types import Cut
from coinfer.policies.loop import Step, run_loop_async
from coinfer.policies.types import Action, Context, Feedback, Policy

T = TypeVar("T")
PROBE_AFTER_S = 0.5  # a link not measured for this long is probed after a frame that sent nothing


class LiveEnv:
    """Frames ``inputs[i]`` (looped) with key-frame weights and, where known, labels (then a
    frame's Feedback says whether the answer was right). ``monitor=True`` reports the measured
    uplink throughput in ``Context.extra["bandwidth_bps"]`` whenever there is a new one.

    ``step`` runs the frame on the environment's own event loop; ``astep`` on the caller's
    (several devices sharing one loop). Use one of the two for the life of the environment."""

    def __init__(
        self,
        client: DeviceClient,
        inputs: Sequence[Sequence[Any]],
        key_weights: Sequence[float] | None = None,
        labels: Sequence[int] | None = None,
        monitor: bool = False,
        started: float | None = None,
        federation: RemoteGroup | None = None,
    ) -> None:
        if not inputs:
            raise ValueError("a live run needs at least one input frame")
        if labels is not None and len(labels) != len(inputs):
            raise ValueError("give one label per input frame")
        self.client = client
        self.inputs = inputs
        self.key_weights = key_weights
        self.labels = labels
        self.monitor = monitor
        self.federation = federation  # a federated learner's group on the edge (SYNC)
        self.records: list[FrameRecord] = []
        self.correct: list[bool | None] = []
        self.frame = 0
        self._measured: float | None = None  # a throughput the policy has not seen yet
        self._measured_at = -math.inf
        self._probe: asyncio.Task[None] | None = None
        self._runner: asyncio.Runner | None = None
        client.shaper = ShapedLink(client.link, time.monotonic() if started is None else started)

    @property
    def cuts(self) -> Sequence[Cut]:
        return self.client.part.cuts

    def elapsed(self) -> float:
        """Seconds since the run (and the link's trace) began."""
        return self.client.shaper.now()

    def observe(self) -> Context:
        i = self.frame
        weight = self.key_weights[i % len(self.key_weights)] if self.key_weights else 0.2
        extra: dict[str, float] = {}
        if self.monitor and self._measured is not None:
            extra["bandwidth_bps"] = self._measured
            self._measured = None
        return Context(frame=i, key_weight=weight, time_s=self.elapsed(), extra=extra)

    async def astep(self, action: Action) -> Feedback:
        if self.federation is not None and self.federation.due:
            await self.federation.flush()  # what the learner queued, before this frame
        offloads = action.cut != self.client.path(action.exit).part.last
        if self._probe is not None and (offloads or self._probe.done()):
            await self._probe  # one message at a time on the connection
            self._probe = None
        i = self.frame
        x = self.inputs[i % len(self.inputs)]
        record = await self.client.frame(i, x, action)  # a probe in flight runs meanwhile
        self.frame += 1
        self.records.append(record)
        correct = None
        if self.labels is not None:
            (logits, *_) = self.client.outputs[-1]
            answer = int(logits.argmax(-1).reshape(-1)[0])
            correct = answer == self.labels[i % len(self.labels)]
        self.correct.append(correct)
        fb = replace(feedback_of(record), exit=record.exit, correct=correct)
        if record.offloaded and record.uplink_s > 0:
            self._measured_at = self.elapsed()
        elif (
            self.monitor
            and self._probe is None
            and self.elapsed() - self._measured_at >= PROBE_AFTER_S
        ):
            # measured while the next frame computes (or before it offloads)
            self._probe = asyncio.ensure_future(self._measure(x))
        return fb

    async def _measure(self, x: Sequence[Any]) -> None:
        """A probe: this frame's input to the edge along the cheapest path; its throughput."""
        exit = min(self.client.exits) if self.client.exits else None
        try:
            _, up, _, _, sent = await asyncio.wait_for(
                self.client.offload(0, list(x), exit), self.client.offload_deadline_s(0, exit)
            )
        except Exception:  # an edge that cannot be probed tells nothing about the link
            self.client.abort()
            return
        if up > 0:
            self._measured = 8.0 * sent / up
            self._measured_at = self.elapsed()

    def step(self, action: Action) -> Feedback:
        return self.run(self.astep(action))

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """``work`` on the environment's own event loop (where its connection lives).

        An ``asyncio.Runner``, not a bare loop: Ctrl-C then cancels the frame at its next await
        (not at whatever line it was on) and raises ``KeyboardInterrupt`` here."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(work)

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        if self.federation is not None and self.federation.out_count:
            await self.federation.flush()  # the group keeps what this device learned last
        await self.client.close()

    def close(self) -> None:
        if self._runner is None:
            return
        loop = self._runner.get_loop()
        try:
            closing = loop.create_task(self.aclose())
            closing.add_done_callback(lambda _: loop.stop())
            while not closing.done():
                # a Ctrl-C after a frame's end but before the loop heard of it leaves that
                # frame's stop callback queued: it ends a pass early, so go round again
                loop.run_forever()
            closing.result()
        finally:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> LiveEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def run_live_env(
    client: DeviceClient,
    policy: Policy,
    frames: Sequence[Sequence[Any]],
    key_weights: Sequence[float] | None = None,
    on_frame: Callable[[FrameRecord], None] | None = None,
    started: float | None = None,
    deadline_s: float | None = None,
    labels: Sequence[int] | None = None,
    monitor: bool = False,
) -> LiveEnv:
    """Every frame in turn through the one loop on the caller's event loop (stopping early
    once ``deadline_s`` seconds have passed since ``started``, a ``time.monotonic()`` stamp
    that is also the link trace's time 0); the environment, holding every frame's record."""
    env = LiveEnv(client, frames, key_weights, labels, monitor, started)

    def done() -> bool:
        return deadline_s is not None and env.elapsed() >= deadline_s

    def report(step: Step) -> None:
        if on_frame is not None:
            on_frame(env.records[step.frame])

    try:
        await run_loop_async(env, policy, len(frames), until=done, on_step=report)
    finally:
        await env.aclose()
    return env
