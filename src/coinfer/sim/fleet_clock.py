"""The fleet's discrete-event clock (``sim.fleet``): each device's frame as four events, the edge
and the shared uplink as processor-sharing resources, each device's loop (``policies.loop``)
handed its Feedback as its next frame starts.

A frame: START (the policy decides; the front is computed) → COMPUTED (the boundary goes up,
on the device's own link or a share of the common uplink) → UPLOADED (the edge takes the back
half, its rate shared among the jobs in service) → the edge finishes → REPLIED (the reply
came down) → the next START. Events at the same instant are taken in (time, device, kind)
order, so a seed gives one run.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from coinfer.errors import BadValueError
from coinfer.latency.predict import CutCostModel
from coinfer.policies.loop import Game, play
from coinfer.policies.types import Action, Context, Feedback, Policy
from coinfer.sim.sharing import SharedResource

if TYPE_CHECKING:
    from coinfer.sim.fleet import FleetDevice, FleetSim


class Event(enum.IntEnum):
    START = 0  # a frame starts: the policy decides, the front computes
    COMPUTED = 1  # the front is done: upload (or, on the device, the frame is done)
    UPLOADED = 2  # the boundary reached the edge: the back half joins the edge's jobs
    REPLIED = 3  # the reply came down: the frame is done


@dataclass(frozen=True)
class FleetRun:
    """Every device's frames: start time, measured delay, chosen cut, regret (device × frame)."""

    types: tuple[str, ...]
    starts: np.ndarray
    delays: np.ndarray
    cuts: np.ndarray
    regrets: np.ndarray
    last_cuts: tuple[int, ...]

    @property
    def devices(self) -> int:
        return len(self.types)

    @property
    def frames(self) -> int:
        return int(self.delays.shape[1])

    def mean_latency(self, first: int | None = None) -> float:
        """Mean delay over all devices' first ``first`` frames (all frames by default)."""
        return float(self.delays[:, :first].mean())

    def mean_regret(self) -> float:
        """Regret per device (s), summed over its frames."""
        return float(self.regrets.sum(axis=1).mean())

    def offload_share(self) -> float:
        last = np.array(self.last_cuts)[:, None]
        return float((self.cuts != last).mean())

    def per_type(self) -> dict[str, float]:
        names = np.array(self.types)
        return {t: float(self.delays[names == t].mean()) for t in dict.fromkeys(self.types)}

    def latency_by_frame(self) -> np.ndarray:
        """The mean over devices of their k-th frame's delay, for every k."""
        return np.asarray(self.delays.mean(axis=0))


class DeviceView:
    """What one device observes: the context the fleet's clock set when its frame started."""

    def __init__(self) -> None:
        self.context = Context()

    def observe(self) -> Context:
        return self.context


@dataclass
class Measured:
    """What one frame measured: each component's seconds."""

    device_s: float = 0.0
    uplink_s: float = 0.0
    edge_s: float = 0.0
    downlink_s: float = 0.0


@dataclass
class DeviceRecord:
    """One device in the run: its loop and what its current frame has done so far."""

    index: int
    spec: FleetDevice
    model: CutCostModel
    rng: np.random.Generator
    game: Game
    view: DeviceView
    action: Action = field(default_factory=lambda: Action(0))
    learned: Feedback | None = None  # the last frame's, for the loop at the next START
    done: int = 0  # frames finished
    measured: Measured = field(default_factory=Measured)
    phase_start: float = 0.0  # when its upload or its back half began

    @property
    def last(self) -> int:
        return self.spec.kind.last


class FleetClock:
    """One run of ``sim``: ``run()`` gives its ``FleetRun``."""

    def __init__(
        self,
        sim: FleetSim,
        policies: Sequence[Policy],
        frames: int,
        on_frame: Callable[[int], None] | None = None,
    ) -> None:
        m = len(sim.devices)
        self.sim, self.frames, self.on_frame = sim, frames, on_frame
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(sim.seed).spawn(m)]
        self.records = []
        for i, (spec, policy, rng) in enumerate(zip(sim.devices, policies, rngs, strict=True)):
            view = DeviceView()
            self.records.append(
                DeviceRecord(i, spec, sim.cost_model(i), rng, play(view, policy, frames), view)
            )
        self.edge = SharedResource(m, float(sim.edge_slots))
        self.up = SharedResource(m, sim.shared_uplink_bps) if sim.shared_uplink_bps else None
        self.starts, self.delays = np.zeros((m, frames)), np.zeros((m, frames))
        self.cuts, self.regrets = np.zeros((m, frames), dtype=int), np.zeros((m, frames))
        self.events: list[tuple[float, int, Event]] = [(0.0, i, Event.START) for i in range(m)]
        heapq.heapify(self.events)
        self.finished = 0

    def run(self) -> FleetRun:
        edge, up = self.edge, self.up
        while self.events or edge.jobs or (up is not None and up.jobs):
            t_event = self.events[0][0] if self.events else math.inf
            t_edge, j_edge = edge.next_completion()
            t_up, j_up = up.next_completion() if up is not None else (math.inf, -1)
            t = min(t_event, t_edge, t_up)
            edge.advance(t)
            if up is not None:
                up.advance(t)
            if t_edge <= t_event and t_edge <= t_up:
                self._back_half_done(self.records[j_edge], t)
            elif up is not None and t_up <= t_event:
                self._shared_upload_done(self.records[j_up], t)
            else:
                _, i, kind = heapq.heappop(self.events)
                self._handle(self.records[i], kind, t)
        devices = self.sim.devices
        return FleetRun(
            tuple(d.kind.name for d in devices),
            self.starts,
            self.delays,
            self.cuts,
            self.regrets,
            tuple(d.kind.last for d in devices),
        )

    def _at(self, t: float, device: DeviceRecord, kind: Event) -> None:
        heapq.heappush(self.events, (t, device.index, kind))

    def _noisy(self, device: DeviceRecord, value: float) -> float:
        noise = self.sim.noise
        if noise <= 0 or value == 0:
            return value
        return float(value * device.rng.lognormal(0.0, noise))

    def _handle(self, d: DeviceRecord, kind: Event, t: float) -> None:
        if kind is Event.START:
            self._start(d, t)
        elif kind is Event.COMPUTED:
            self._computed(d, t)
        elif kind is Event.UPLOADED:
            d.phase_start = t
            self.edge.add(d.index, self._noisy(d, d.model.edge_s[d.action.cut]), 1.0, t)
        else:
            self._finish(d, t)

    def _start(self, d: DeviceRecord, t: float) -> None:
        k = d.done
        self.starts[d.index, k] = t
        self.sim.set_truth(d.index, t, self.edge, self.up)
        weights = d.spec.key_weights
        ctx = Context(
            frame=int(k),
            key_weight=float(weights[k % len(weights)]),
            time_s=t,
            extra={"bandwidth_bps": d.spec.link.uplink.at(t)},
        )
        d.view.context = ctx
        d.action = next(d.game) if d.learned is None else d.game.send(d.learned)
        cut = d.action.cut
        if not 0 <= cut <= d.last:
            raise BadValueError(f"device {d.index}: cut {cut} is out of range 0..{d.last}")
        truth = self.sim.truth(d.index)
        self.cuts[d.index, k] = cut
        self.regrets[d.index, k] = truth[cut] - truth.min()
        d.measured = Measured(device_s=self._noisy(d, d.model.device_s[cut]))
        self._at(t + d.measured.device_s, d, Event.COMPUTED)

    def _computed(self, d: DeviceRecord, t: float) -> None:
        cut = d.action.cut
        if cut == d.last:
            self._finish(d, t)
            return
        sent = d.model.boundary_bytes[cut]
        d.phase_start = t
        if self.up is not None:
            self.up.add(d.index, self._noisy(d, 8.0 * sent), d.spec.link.uplink.at(t), t)
            return
        d.measured.uplink_s = self._noisy(d, d.spec.link.upload_seconds(sent, t))
        self._at(t + d.measured.uplink_s, d, Event.UPLOADED)

    def _shared_upload_done(self, d: DeviceRecord, t: float) -> None:
        assert self.up is not None
        self.up.remove(d.index)
        one_way = d.spec.link.one_way_s
        d.measured.uplink_s = t - d.phase_start + one_way
        self._at(t + one_way, d, Event.UPLOADED)

    def _back_half_done(self, d: DeviceRecord, t: float) -> None:
        self.edge.remove(d.index)
        d.measured.edge_s = t - d.phase_start
        down = d.spec.link.download_seconds(d.model.result_bytes, t)
        d.measured.downlink_s = self._noisy(d, down)
        self._at(t + d.measured.downlink_s, d, Event.REPLIED)

    def _finish(self, d: DeviceRecord, t: float) -> None:
        k, cut, m = d.done, d.action.cut, d.measured
        sent = d.model.boundary_bytes[cut] if cut < d.last else 0
        fb = Feedback(
            float(m.device_s), float(m.uplink_s), float(m.edge_s), float(m.downlink_s), sent
        )
        if k + 1 == self.frames:  # the loop's last frame: it learns and ends
            with contextlib.suppress(StopIteration):
                d.game.send(fb)
        else:
            d.learned = fb
        self.delays[d.index, k] = t - self.starts[d.index, k]
        d.done += 1
        self.finished += 1
        if self.on_frame is not None:
            self.on_frame(self.finished)
        if d.done < self.frames:
            start = max(t, self.starts[d.index, k] + self.sim.frame_interval_s)
            self._at(start, d, Event.START)
