"""Monte Carlo of the optimal-stopping rules (``coinfer.policies.stopping``): many tasks at
once, vectorised over tasks, on i.i.d. block fading or a finite-state Markov channel, and a
stage-wise Environment (``StageEnv``) in which the rules run one task at a time through the
one loop like every other policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coinfer.latency.channels import ChannelDraws
from coinfer.policies.stopping.costs import StoppingCosts
from coinfer.policies.stopping.markov import FiniteStateChannel, MarkovRule
from coinfer.policies.stopping.rules import ThresholdRule
from coinfer.policies.types import Action, Context, Feedback

GainSampler = Callable[[np.random.Generator, int], np.ndarray]


def _final_stage(
    costs: StoppingCosts,
    stage: int,
    gains: np.ndarray,
    sample: GainSampler,
    h_min: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Cost of stopping at ``stage`` for sure: blocks in outage are waited out (w per second)."""
    gains = gains.copy()
    idle = np.zeros(len(gains))
    if costs.bits[stage] > 0:
        bad = gains < h_min
        while bad.any():
            idle[bad] += costs.block_s
            gains[bad] = sample(rng, int(bad.sum()))
            bad = gains < h_min
    return np.asarray(costs.stop_cost(stage, gains) + costs.time_weight * idle)


def simulate_rule(
    rule: ThresholdRule,
    costs: StoppingCosts,
    sample: GainSampler,
    h_min: float,
    tasks: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Monte Carlo: the realised cost of ``tasks`` independent tasks under ``rule``."""
    out = np.full(tasks, np.nan)
    active = np.ones(tasks, dtype=bool)
    for stage in range(rule.last):
        gains = sample(rng, tasks)
        stop = active & (gains >= max(rule.thresholds[stage], h_min))
        out[stop] = costs.stop_cost(stage, gains[stop])
        active &= ~stop
    gains = sample(rng, tasks)
    out[active] = _final_stage(costs, rule.last, gains[active], sample, h_min, rng)
    return out


def simulate_prophet(
    costs: StoppingCosts,
    sample: GainSampler,
    h_min: float,
    last: int,
    tasks: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The prophet bound: knowing every stage's gain in advance, stop at the cheapest stage
    (the last one waiting out its outage, as any rule must)."""
    best = np.full(tasks, np.inf)
    for stage in range(last):
        gains = sample(rng, tasks)
        here = np.where(gains >= h_min, costs.stop_cost(stage, gains), np.inf)
        best = np.minimum(best, here)
    final = _final_stage(costs, last, sample(rng, tasks), sample, h_min, rng)
    return np.asarray(np.minimum(best, final))


def simulate_markov(
    rules: Sequence[MarkovRule],
    costs: StoppingCosts,
    channel: FiniteStateChannel,
    tasks: int,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Monte Carlo on shared channel paths: each rule's realised costs, and the prophet's (the
    cheapest stage of each path, known in advance)."""
    last = max(rule.last for rule in rules)
    gains = np.asarray(channel.gains, dtype=float)
    n = len(gains)
    paths = np.empty((tasks, last + 1), dtype=int)
    paths[:, 0] = rng.choice(n, size=tasks, p=channel.stationary())
    cumulative = np.cumsum(channel.matrix, axis=1)
    for stage in range(1, last + 1):
        u = rng.random(tasks)
        paths[:, stage] = (u[:, None] > cumulative[paths[:, stage - 1]]).sum(axis=1)
    stage_costs = np.stack([costs.stop_cost(s, gains[paths[:, s]]) for s in range(last + 1)], 1)
    realised = []
    for rule in rules:
        stops = rule.stop[np.arange(rule.last + 1)[None, :], paths[:, : rule.last + 1]]
        first = stops.argmax(axis=1)  # the last stage always stops
        realised.append(stage_costs[np.arange(tasks), first])
    return realised, stage_costs.min(axis=1)


class StageEnv:
    """One task per frame, decided stage by stage (DESIGN §1's stage-wise extension): at stage
    l the policy sees the block's gain h_l and stops (``Action(cut <= l)``: upload the boundary
    at R(h_l), the edge runs the rest) or goes on (``Action(cut > l)``: compute layer l + 1,
    and the next block has a fresh gain). A block in outage (h < h_min) carries nothing: a
    stop there goes on instead, or, at the last stage L̄, waits one block (``block_s``).

    Each task's Feedback holds its times and device energy; ``task_costs`` its cost, energy +
    w × time, which is Y_l(h_l) (plus w per second waited) exactly."""

    def __init__(
        self,
        costs: StoppingCosts,
        device_s: Sequence[float] | np.ndarray,
        edge_s: Sequence[float] | np.ndarray,
        compute_w: float,
        sample: GainSampler,
        h_min: float,
        last: int | None = None,
        seed: int = 0,
        cuts: Sequence = (),
    ) -> None:
        self.stage_costs = costs
        self.tau = np.asarray(device_s, dtype=float)
        self.s = np.asarray(edge_s, dtype=float)
        if len(self.tau) != costs.layers or len(self.s) != costs.layers:
            raise ValueError(f"need the device and edge time of each of the {costs.layers} layers")
        self.compute_w = compute_w
        self.sample = sample
        self.h_min = h_min
        self.last = costs.layers if last is None else last
        self.draws = ChannelDraws(sample, costs.layers, seed)
        self._cuts = cuts
        self.frame = 0
        self.task_costs: list[float] = []
        self.stops: list[int] = []
        self._begin()

    @property
    def cuts(self) -> Sequence:
        return self._cuts

    def _begin(self) -> None:
        self.stage = 0
        self.idle_s = 0.0
        self.draws.start(self.frame)
        self.gain = self.draws.gain(0)

    def observe(self) -> Context:
        return Context(frame=self.frame, stage=self.stage, gain=self.gain)

    def step(self, action: Action) -> Feedback | None:
        c = self.stage_costs
        stage = self.stage
        wants_stop = action.cut <= stage or stage >= self.last
        if wants_stop and (c.bits[stage] == 0 or self.gain >= self.h_min):
            return self._finish(stage)
        if wants_stop and stage >= self.last:  # outage at the last stage: wait a block
            self.idle_s += c.block_s
            self.gain = self.draws.redraw(stage)
        else:  # go on (or a stop in outage: compute on)
            self.stage += 1
            self.gain = self.draws.gain(self.stage)
        return None

    def _finish(self, stage: int) -> Feedback:
        c = self.stage_costs
        device_s = float(self.tau[:stage].sum()) + self.idle_s
        uplink_s = float(c.bits[stage] / c.radio.rate_bps(self.gain)) if c.bits[stage] else 0.0
        edge_s = float(self.s[stage:].sum())
        energy = self.compute_w * float(self.tau[:stage].sum()) + c.transmit_w * uplink_s
        fb = Feedback(device_s, uplink_s, edge_s, 0.0, int(c.bits[stage] // 8), energy)
        self.task_costs.append(energy + c.time_weight * fb.total_s)
        self.stops.append(stage)
        self.frame += 1
        self._begin()
        return fb
