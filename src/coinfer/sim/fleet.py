"""Many devices, one edge (CANS's world): a discrete-event simulation in continuous time.

Every device runs its own frames back to back (or no faster than ``frame_interval_s``): it
computes the front of its model, uploads the boundary over its own link (a trace read at the
moment of the transfer, or a share of a common uplink capacity), waits for the edge, and hears
the reply. The edge is a processor-sharing server with ``edge_slots`` slots: with n jobs in
service each runs at min(1, slots / n) of its uncontended speed, so the back-end time a device
measures grows with the load the other devices put on it — the non-stationarity its learner
has to follow. Deterministic for a seed (per-device noise streams, ties broken by device).

The truth for regret and the Oracle is each cut's expected delay for a frame starting now, with
the edge's and the shared uplink's current load held fixed (one more job: this device's).
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from coinfer.errors import BadValueError
from coinfer.graph.partition import Partitioning
from coinfer.latency.devices import DeviceModel
from coinfer.latency.link import ConstantBandwidth, Link
from coinfer.latency.predict import CutCostModel, cut_totals
from coinfer.policies.loop import Game, play
from coinfer.policies.types import Action, Context, Feedback, Policy
from coinfer.sim.sharing import SharedResource

_START, _COMPUTED, _UPLOADED, _REPLIED = range(4)


@dataclass(frozen=True)
class DeviceType:
    """What every device of one type shares: the model, its cuts, and each cut's compute on
    this device class and on the (uncontended) edge."""

    name: str
    model: str
    part: Partitioning
    device: DeviceModel
    edge: DeviceModel

    @property
    def last(self) -> int:
        return self.part.last

    def cost_model(self) -> CutCostModel:
        return CutCostModel(self.part, self.device, self.edge)


@dataclass(frozen=True)
class FleetDevice:
    kind: DeviceType
    link: Link
    key_weights: Sequence[float] = (0.2,)  # looped over the device's frames


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


class _DeviceView:
    """What one device observes: the context the fleet's clock set when its frame started."""

    def __init__(self) -> None:
        self.context = Context()

    def observe(self) -> Context:
        return self.context


class FleetSim:
    """``run(policies, frames)``: one policy per device, each device ``frames`` frames.

    Each device runs the one loop (``policies.loop.play``) like every other world; the fleet
    is its Environment, split in time: when a device's frame starts, the fleet sets what it
    observes and takes the loop's action; when the frame's last event happens, the loop gets
    its Feedback (handed over as the device's next frame starts — the same instant, frames
    running back to back — so the policy learns before it next selects, as in any world).
    """

    def __init__(
        self,
        devices: Sequence[FleetDevice],
        edge_slots: int = 1,
        shared_uplink_bps: float | None = None,
        noise: float = 0.1,
        frame_interval_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not devices:
            raise BadValueError("a fleet needs at least one device")
        if edge_slots < 1:
            raise BadValueError(f"the edge needs at least one slot, got {edge_slots}")
        if shared_uplink_bps is not None and not shared_uplink_bps > 0:
            raise BadValueError(
                f"a shared uplink needs a positive capacity, got {shared_uplink_bps}"
            )
        if noise < 0:
            raise BadValueError(f"noise is a standard deviation: >= 0, got {noise}")
        self.devices = list(devices)
        self.edge_slots = edge_slots
        self.shared_uplink_bps = shared_uplink_bps
        self.noise = noise
        self.frame_interval_s = frame_interval_s
        self.seed = seed
        models: dict[str, CutCostModel] = {}
        for d in self.devices:
            models.setdefault(d.kind.name, d.kind.cost_model())
        self._models = [models[d.kind.name] for d in self.devices]
        self._truth = [np.zeros(d.kind.last + 1) for d in self.devices]

    def cost_model(self, device: int) -> CutCostModel:
        return self._models[device]

    def truth(self, device: int) -> np.ndarray:
        """Each cut's expected delay for the device's current frame (set when it starts)."""
        return self._truth[device]

    def _expected(self, i: int, t: float, edge: SharedResource, up: SharedResource | None) -> None:
        dev = self.devices[i]
        slowdown = 1.0 / edge.rate_if_added(1.0)
        link = dev.link
        if up is not None:
            rate = up.rate_if_added(dev.link.uplink.at(t))
            link = Link(
                ConstantBandwidth(rate), dev.link.rtt_s, dev.link.downlink or dev.link.uplink
            )
        self._truth[i] = cut_totals(self._models[i], link, slowdown, t)

    def run(
        self,
        policies: Sequence[Policy],
        frames: int,
        on_frame: Callable[[int], None] | None = None,
    ) -> FleetRun:
        """Simulate until every device has run ``frames`` frames; ``on_frame(done)`` counts
        device-frames as they finish."""
        m = len(self.devices)
        if len(policies) != m:
            raise BadValueError(
                f"need one policy per device: {m} devices, {len(policies)} policies"
            )
        if frames < 1:
            raise BadValueError(f"frames must be at least 1, got {frames}")
        seeds = np.random.SeedSequence(self.seed).spawn(m)
        rngs = [np.random.default_rng(s) for s in seeds]
        edge = SharedResource(m, float(self.edge_slots))
        up = SharedResource(m, self.shared_uplink_bps) if self.shared_uplink_bps else None
        starts, delays = np.zeros((m, frames)), np.zeros((m, frames))
        cuts, regrets = np.zeros((m, frames), dtype=int), np.zeros((m, frames))
        done = np.zeros(m, dtype=int)
        action: list[Action] = [Action(0)] * m
        views = [_DeviceView() for _ in range(m)]
        games: list[Game] = [play(views[i], policies[i], frames) for i in range(m)]
        learned: list[Feedback | None] = [None] * m  # the last frame's, for the loop

        def decide(i: int, ctx: Context) -> Action:
            views[i].context = ctx
            fb = learned[i]
            return next(games[i]) if fb is None else games[i].send(fb)

        parts = np.zeros((m, 4))  # measured device, uplink, edge, downlink seconds
        phase_start = np.zeros(m)
        events: list[tuple[float, int, int]] = [(0.0, i, _START) for i in range(m)]
        heapq.heapify(events)
        finished = 0

        def noisy(i: int, value: float) -> float:
            if self.noise <= 0 or value == 0:
                return value
            return float(value * rngs[i].lognormal(0.0, self.noise))

        def finish(i: int, t: float) -> None:
            nonlocal finished
            k = done[i]
            cut = action[i].cut
            sent = self._models[i].boundary_bytes[cut] if cut < self.devices[i].kind.last else 0
            device_s, uplink_s, edge_s, downlink_s = (float(v) for v in parts[i])
            fb = Feedback(device_s, uplink_s, edge_s, downlink_s, sent)
            if k + 1 == frames:  # the loop's last frame: it learns and ends
                with contextlib.suppress(StopIteration):
                    games[i].send(fb)
            else:
                learned[i] = fb
            delays[i, k] = t - starts[i, k]
            done[i] += 1
            finished += 1
            if on_frame is not None:
                on_frame(finished)
            if done[i] < frames:
                heapq.heappush(events, (max(t, starts[i, k] + self.frame_interval_s), i, _START))

        while events or edge.jobs or (up is not None and up.jobs):
            t_event = events[0][0] if events else math.inf
            t_edge, j_edge = edge.next_completion()
            t_up, j_up = up.next_completion() if up is not None else (math.inf, -1)
            t = min(t_event, t_edge, t_up)
            edge.advance(t)
            if up is not None:
                up.advance(t)
            if t_edge <= t_event and t_edge <= t_up:  # the edge finished a device's back half
                edge.remove(j_edge)
                parts[j_edge, 2] = t - phase_start[j_edge]
                down = self._models[j_edge].result_bytes
                parts[j_edge, 3] = noisy(
                    j_edge, self.devices[j_edge].link.download_seconds(down, t)
                )
                heapq.heappush(events, (t + parts[j_edge, 3], j_edge, _REPLIED))
                continue
            if up is not None and t_up <= t_event:  # a shared-uplink transfer finished
                up.remove(j_up)
                rtt_half = self.devices[j_up].link.one_way_s
                parts[j_up, 1] = t - phase_start[j_up] + rtt_half
                heapq.heappush(events, (t + rtt_half, j_up, _UPLOADED))
                continue
            _, i, kind = heapq.heappop(events)
            dev, model = self.devices[i], self._models[i]
            if kind == _START:
                k = done[i]
                starts[i, k] = t
                self._expected(i, t, edge, up)
                weights = dev.key_weights
                ctx = Context(
                    frame=int(k),
                    key_weight=float(weights[k % len(weights)]),
                    time_s=t,
                    extra={"bandwidth_bps": dev.link.uplink.at(t)},
                )
                action[i] = decide(i, ctx)
                cut = action[i].cut
                if not 0 <= cut <= dev.kind.last:
                    raise BadValueError(f"device {i}: cut {cut} is out of range 0..{dev.kind.last}")
                truth = self._truth[i]
                cuts[i, k] = cut
                regrets[i, k] = truth[cut] - truth.min()
                parts[i] = 0.0
                parts[i, 0] = noisy(i, model.device_s[cut])
                heapq.heappush(events, (t + parts[i, 0], i, _COMPUTED))
            elif kind == _COMPUTED:
                cut = action[i].cut
                if cut == dev.kind.last:
                    finish(i, t)
                    continue
                sent = model.boundary_bytes[cut]
                phase_start[i] = t
                if up is not None:
                    up.add(i, noisy(i, 8.0 * sent), dev.link.uplink.at(t), t)
                else:
                    parts[i, 1] = noisy(i, dev.link.upload_seconds(sent, t))
                    heapq.heappush(events, (t + parts[i, 1], i, _UPLOADED))
            elif kind == _UPLOADED:
                phase_start[i] = t
                edge.add(i, noisy(i, model.edge_s[action[i].cut]), 1.0, t)
            else:  # _REPLIED
                finish(i, t)
        return FleetRun(
            types=tuple(d.kind.name for d in self.devices),
            starts=starts,
            delays=delays,
            cuts=cuts,
            regrets=regrets,
            last_cuts=tuple(d.kind.last for d in self.devices),
        )
