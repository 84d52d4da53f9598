"""Online splitting by optimal stopping, live (``LiveStageEnv``): a chain model run layer by
layer on the device, an uplink that fades block by block, and at every stage the question
"offload now?" put to the policy through the one loop.

Each task starts at stage 0 with the channel gain h_0 of its first block. At stage l the policy
sees (l, h_l): to stop is to send the boundary of cut l to the edge at the block's Shannon rate
R(h_l) — the shaper plays the rate block by block (``BlockBandwidth``) — and let the edge run
the rest; to go on is to run layer l + 1 here for real (padded to the emulated device class),
after which the next block's gain holds. A block in outage (h < h_min) carries nothing: a stop
there computes on, or, at the last stage, waits the block out. The gains come from
``sim.channels.ChannelDraws``, so every policy meets the same channel in the same task.

A task's measured cost is DESIGN §4's, from what was measured: device energy (compute power ×
its measured compute time + transmit power × its measured upload time) + w × (its measured
device, upload, edge and download times). ``calibrate`` measures the per-layer times
(and the bytes each cut really sends) that the rules and their analytic costs are built from.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import torch

from coinfer.device.client import DeviceClient
from coinfer.device.shaping import ShapedLink
from coinfer.graph.partitioning import Partitioning
from coinfer.graph.types import Cut
from coinfer.latency.channels import ChannelDraws
from coinfer.latency.link import BlockBandwidth, ConstantBandwidth, Link
from coinfer.latency.wireless import Radio
from coinfer.policies.stopping.costs import Fading, StoppingCosts, chain_costs
from coinfer.policies.types import Action, Context, Feedback

DOWNLINK_BPS = 10e9  # the model has no download term: the reply comes back at 10 Gbit/s
BLOCK_S = 0.01  # one fading block (the rules' waiting in outage, never needed at L̄ = N)


@dataclass(frozen=True)
class TaskRecord:
    task: int
    stop: int  # the stage it offloaded at (N: all on the device)
    gain: float  # the gain it offloaded in (or saw last)
    device_s: float
    uplink_s: float
    edge_s: float
    downlink_s: float
    bytes_sent: int
    energy_j: float
    cost: float
    fallback: bool


@dataclass(frozen=True)
class Calibration:
    """Per-layer device times τ_i and edge times s_i (i = 1..N), the bits each cut really
    sends (header and payload, l = 0..N−1), and what every offload takes beyond D/R(h) and
    the edge's compute, as measured: the upload's overhead (the paced sender wakes up to a
    millisecond late: the event loop's timer resolution) and the reply's way back."""

    device_s: tuple[float, ...]
    edge_s: tuple[float, ...]
    bits: tuple[float, ...]
    upload_overhead_s: float = 0.0
    reply_s: float = 0.0

    def costs(self, compute_w: float, radio: Radio, time_weight: float) -> StoppingCosts:
        """The stage costs on these times: G_l gains k·(upload overhead) + w·(reply) at every
        stage that offloads (the radio is on for the whole measured upload)."""
        base = chain_costs(
            self.device_s,
            self.edge_s,
            self.bits,
            compute_w,
            radio.power_w,
            time_weight,
            radio,
            BLOCK_S,
        )
        extra = base.k * self.upload_overhead_s + time_weight * self.reply_s
        fixed = base.fixed + extra * (np.arange(len(base.fixed)) < base.layers)
        return replace(base, fixed=fixed)


class LiveStageEnv:
    """A stage-wise Environment over a real edge (``client``, whose link this environment
    sets block by block)."""

    def __init__(
        self,
        client: DeviceClient,
        x: Sequence[torch.Tensor],
        fading: Fading,
        sample: object,
        radio: Radio,
        compute_w: float,
        time_weight: float,
        seed: int = 0,
    ) -> None:
        self.client = client
        self.part = cast(Partitioning, client.part)  # stage by stage: torch's segments
        self.x = list(x)
        self.fading = fading
        self.radio = radio
        self.compute_w = compute_w
        self.time_weight = time_weight
        self.layers = self.part.last
        self.draws = ChannelDraws(sample, self.layers, seed)  # type: ignore[arg-type]
        self.uplink = BlockBandwidth(1e6)
        client.link = Link(self.uplink, 0.0, ConstantBandwidth(DOWNLINK_BPS))
        client.shaper = ShapedLink(client.link, time.monotonic())
        front = client.path(None).front_s
        self.tau = [front[i + 1] - front[i] for i in range(self.layers)]  # the emulated class
        self._segments = [self.part.segment(i, i + 1) for i in range(self.layers)]
        self._loop = asyncio.new_event_loop()
        self.records: list[TaskRecord] = []
        self.layer_s: list[list[float]] = [[] for _ in range(self.layers)]  # as run, per layer
        self.task = 0
        self._begin()

    @property
    def cuts(self) -> Sequence[Cut]:
        return self.part.cuts

    def _begin(self) -> None:
        self.stage = 0
        self.boundary: list[torch.Tensor] = list(self.x)
        self.compute_s = 0.0
        self.draws.start(self.task)
        self.gain = self.draws.gain(0)

    def observe(self) -> Context:
        return Context(
            frame=self.task, stage=self.stage, gain=self.gain, time_s=self.client.shaper.now()
        )

    async def _compute_layer(self) -> None:
        t0 = time.monotonic()
        with torch.no_grad():
            self.boundary = list(self._segments[self.stage](*self.boundary))
        wait = t0 + self.tau[self.stage] - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.compute_s += time.monotonic() - t0
        self.layer_s[self.stage].append(time.monotonic() - t0)
        self.stage += 1
        self.gain = self.draws.gain(self.stage)

    async def astep(self, action: Action) -> Feedback | None:
        """Stop (``action.cut <= stage``) or go on. The placement is the whole chain (L̄ = N):
        the last stage sends nothing, so a stop in outage can always compute on instead."""
        stop = action.cut <= self.stage or self.stage >= self.layers
        if stop and (self.stage == self.layers or self.gain >= self.fading.h_min):
            return await self._finish()
        await self._compute_layer()
        return None

    async def _finish(self) -> Feedback:
        stage, up, edge_s, down, sent, fallback = self.stage, 0.0, 0.0, 0.0, 0, False
        if stage < self.layers:
            self.uplink.set(float(self.radio.rate_bps(self.gain)))
            try:
                deadline = self.client.offload_deadline_s(sum(t.nbytes for t in self.boundary))
                _, up, edge_s, down, sent = await asyncio.wait_for(
                    self.client.offload(stage, self.boundary), deadline
                )
            except Exception:  # the edge failed the task: the device finishes it
                self.client.abort()
                fallback = True
                while self.stage < self.layers:
                    await self._compute_layer()
        energy = self.compute_w * self.compute_s + self.radio.power_w * up
        fb = Feedback(self.compute_s, up, edge_s, down, sent, energy)
        cost = energy + self.time_weight * fb.total_s
        self.records.append(
            TaskRecord(
                self.task,
                stage,
                self.gain,
                self.compute_s,
                up,
                edge_s,
                down,
                sent,
                energy,
                cost,
                fallback,
            )
        )
        self.task += 1
        self._begin()
        return fb

    def step(self, action: Action) -> Feedback | None:
        return self._loop.run_until_complete(self.astep(action))

    def close(self) -> None:
        self._loop.run_until_complete(self.client.close())
        self._loop.close()

    def calibrate(self, repeats: int = 5, rate_bps: float | None = None) -> Calibration:
        """Median per-layer device time and per-cut edge time over ``repeats`` passes (every
        cut offloaded at a fast rate), the bytes each cut's request takes on the wire, and the
        offload overhead (their mean: costs are linear in it): the smallest boundary sent
        ``8 × repeats`` times at ``rate_bps`` (the channel's mean rate by default)."""
        self.uplink.set(1e9)
        remaining: list[list[float]] = [[] for _ in range(self.layers)]
        layer_s: list[list[float]] = [[] for _ in range(self.layers)]
        fronts = [self._front(cut) for cut in range(self.layers)]
        bits = [0.0] * self.layers  # what each cut's request takes on the wire, header included
        for _ in range(repeats):
            self._begin()
            for layer in range(self.layers):  # timed as in a task: inside the event loop
                before = self.compute_s
                self._loop.run_until_complete(self._compute_layer())
                layer_s[layer].append(self.compute_s - before)
            for cut in range(self.layers):
                _, _, edge_s, _, sent = self._loop.run_until_complete(
                    self.client.offload(cut, fronts[cut])
                )
                remaining[cut].append(edge_s)
                bits[cut] = 8.0 * sent
        edge_rest = [statistics.median(r) for r in remaining] + [0.0]
        per_layer_edge = [max(edge_rest[i] - edge_rest[i + 1], 0.0) for i in range(self.layers)]
        rate = rate_bps or float(self.radio.rate_bps(self.fading.mean_gain))
        self.uplink.set(rate)
        small = int(np.argmin(bits))
        boundary = fronts[small]
        excess, replies = [], []
        for _ in range(8 * repeats):
            _, up, _, down, sent = self._loop.run_until_complete(
                self.client.offload(small, boundary)
            )
            excess.append(up - 8.0 * sent / rate)
            replies.append(down)
        self._begin()
        return Calibration(
            tuple(statistics.median(s) for s in layer_s),
            tuple(per_layer_edge),
            tuple(bits),
            max(statistics.fmean(excess), 0.0),
            statistics.fmean(replies),
        )

    def _front(self, cut: int) -> list[torch.Tensor]:
        boundary = list(self.x)
        with torch.no_grad():
            for segment in self._segments[:cut]:
                boundary = list(segment(*boundary))
        return boundary


def measured_costs(
    env: LiveStageEnv, calibration: Calibration, time_weight: float
) -> StoppingCosts:
    """The stage costs on the times measured during the run itself: each layer's mean device
    time, each offloading cut's mean edge time (of the rest of the model), the mean upload
    overhead beyond D/R(h) and the mean reply — the calibration's value wherever the run never
    measured one."""
    layers = env.layers
    tau = [
        statistics.fmean(t) if t else c
        for t, c in zip(env.layer_s, calibration.device_s, strict=True)
    ]
    edge_rest = [*np.cumsum(calibration.edge_s[::-1])[::-1], 0.0]
    offloads = [r for r in env.records if r.stop < layers and not r.fallback]
    for cut in range(layers):
        seen = [r.edge_s for r in offloads if r.stop == cut]
        if seen:
            edge_rest[cut] = statistics.fmean(seen)
    overhead = [
        r.uplink_s - 8.0 * r.bytes_sent / float(env.radio.rate_bps(r.gain)) for r in offloads
    ]
    upload_extra = statistics.fmean(overhead) if overhead else calibration.upload_overhead_s
    reply = statistics.fmean(r.downlink_s for r in offloads) if offloads else calibration.reply_s
    base = chain_costs(
        tau,
        [0.0] * layers,
        calibration.bits,
        env.compute_w,
        env.radio.power_w,
        time_weight,
        env.radio,
        BLOCK_S,
    )
    offloading = np.arange(layers + 1) < layers
    extra = base.k * upload_extra + time_weight * reply
    fixed = base.fixed + time_weight * np.asarray(edge_rest, dtype=float) + extra * offloading
    return replace(base, fixed=fixed)


def mean_cost(records: Sequence[TaskRecord]) -> tuple[float, float]:
    """Mean measured cost and its 95% half-width."""
    costs = np.array([r.cost for r in records])
    half = 1.96 * float(costs.std(ddof=1)) / np.sqrt(len(costs)) if len(costs) > 1 else 0.0
    return float(costs.mean()), half
