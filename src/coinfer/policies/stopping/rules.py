"""Threshold rules for when to stop computing locally and offload: the optimal one by backward
induction, the one-stage look-ahead, myopic and fixed splits, each with its exact expected cost
(integrals over the fading density by adaptive quadrature, not Monte Carlo)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import integrate

from coinfer.errors import BadValueError
from coinfer.policies.stopping.costs import Fading, StoppingCosts


def quad(f: Callable[[float], float], lo: float, hi: float, scale: float) -> float:
    """∫ f over [lo, hi), integrated in x = h / scale so that quadrature sees O(1) numbers
    whatever the gains' physical scale (1e-7 for a path-loss gain)."""
    if not hi > lo:
        return 0.0
    value, _ = integrate.quad(
        lambda x: f(x * scale) * scale,
        lo / scale,
        hi / scale,
        limit=200,
        epsabs=1e-13,
        epsrel=1e-10,
    )
    return float(value)


@dataclass(frozen=True)
class ThresholdRule:
    """Stop at stage l < L̄ iff h_l ≥ ``thresholds[l]``; at L̄ stop in the first usable block.
    ``expected`` is the rule's exact expected cost from each stage on."""

    name: str
    last: int
    thresholds: np.ndarray
    expected: np.ndarray

    @property
    def cost(self) -> float:
        return float(self.expected[0])


class Stages:
    """Expectations of the stage costs under one fading law."""

    def __init__(self, costs: StoppingCosts, fading: Fading) -> None:
        self.costs = costs
        self.fading = fading
        self.usable = 1.0 - fading.outage

    def tail_mass(self, lo: float) -> float:
        """P(h ≥ max(lo, h_min))."""
        lo = max(lo, self.fading.h_min)
        if math.isinf(lo):
            return 0.0
        if lo == self.fading.h_min:
            return self.usable
        return quad(self.fading.pdf, lo, math.inf, self.fading.mean_gain)

    def stop_integral(self, stage: int, lo: float) -> float:
        """E[Y_stage(h); h ≥ max(lo, h_min)]."""
        lo = max(lo, self.fading.h_min)
        if math.isinf(lo):
            return 0.0
        c = self.costs
        mass = self.tail_mass(lo)
        if c.bits[stage] == 0:
            return float(c.fixed[stage] * mass)
        inverse_rate = quad(
            lambda h: self.fading.pdf(h) / float(c.radio.rate_bps(h)),
            lo,
            math.inf,
            self.fading.mean_gain,
        )
        return float(c.fixed[stage] * mass + c.k * c.bits[stage] * inverse_rate)

    def must_stop(self, stage: int) -> float:
        """Expected cost of stopping at ``stage`` in its first usable block (waiting through
        outage blocks at w per second)."""
        c = self.costs
        if c.bits[stage] == 0:
            return float(c.fixed[stage])
        waiting = self.fading.outage / self.usable * c.time_weight * c.block_s
        return self.stop_integral(stage, 0.0) / self.usable + waiting

    def evaluate(self, thresholds: np.ndarray, last: int) -> np.ndarray:
        """Exact expected cost from each stage of the threshold rule (policy evaluation)."""
        value = np.empty(last + 1)
        value[last] = self.must_stop(last)
        for stage in range(last - 1, -1, -1):
            t = max(float(thresholds[stage]), self.fading.h_min)
            value[stage] = self.stop_integral(stage, t) + (1 - self.tail_mass(t)) * value[stage + 1]
        return value

    def threshold(self, stage: int, continue_cost: float) -> float:
        """The least gain at which stopping costs no more than ``continue_cost``."""
        c = self.costs
        gap = continue_cost - c.fixed[stage]
        if gap <= 0:
            return math.inf
        if c.bits[stage] == 0:
            return 0.0
        exponent = c.k * c.bits[stage] / (c.radio.bandwidth_hz * gap)
        if exponent > 1000:  # 2^1000: no channel is that good
            return math.inf
        return c.radio.gain_for_rate(c.k * c.bits[stage] / gap)


def check_last(costs: StoppingCosts, last: int | None) -> int:
    last = costs.layers if last is None else last
    if not 0 <= last <= costs.layers:
        raise BadValueError(f"the placement L̄ must be in 0..{costs.layers}, got {last}")
    return last


def optimal_rule(costs: StoppingCosts, fading: Fading, last: int | None = None) -> ThresholdRule:
    """Backward induction: γ_l from EV_{l+1}, EV_l = E[min(Y_l, EV_{l+1})]."""
    last = check_last(costs, last)
    stages = Stages(costs, fading)
    value = np.empty(last + 1)
    thresholds = np.full(last + 1, fading.h_min)
    value[last] = stages.must_stop(last)
    for stage in range(last - 1, -1, -1):
        t = max(stages.threshold(stage, value[stage + 1]), fading.h_min)
        thresholds[stage] = t
        value[stage] = stages.stop_integral(stage, t) + (1 - stages.tail_mass(t)) * value[stage + 1]
    return ThresholdRule("optimal", last, thresholds, value)


def osla_rule(costs: StoppingCosts, fading: Fading, last: int | None = None) -> ThresholdRule:
    """One-stage look-ahead: stop at l iff stopping now costs no more than stopping at l + 1
    for sure — closed-form thresholds from E[Y_{l+1}] instead of EV_{l+1}."""
    last = check_last(costs, last)
    stages = Stages(costs, fading)
    thresholds = np.full(last + 1, fading.h_min)
    for stage in range(last):
        thresholds[stage] = max(stages.threshold(stage, stages.must_stop(stage + 1)), fading.h_min)
    return ThresholdRule("osla", last, thresholds, stages.evaluate(thresholds, last))


def fixed_rule(
    costs: StoppingCosts,
    fading: Fading,
    stage: int,
    name: str = "fixed",
    last: int | None = None,
) -> ThresholdRule:
    """Split at ``stage`` whatever the channel (0: edge-only; N: device-only). Under the same
    outage convention as every rule: a block in outage at ``stage`` makes the device compute on
    and send at the next usable stage, waiting only at L̄."""
    last = check_last(costs, last)
    if not 0 <= stage <= last:
        raise BadValueError(f"a fixed split must be in 0..{last}, got {stage}")
    thresholds = np.where(np.arange(last + 1) < stage, math.inf, fading.h_min)
    return ThresholdRule(name, last, thresholds, Stages(costs, fading).evaluate(thresholds, last))


def evaluate_rule(rule: ThresholdRule, costs: StoppingCosts, fading: Fading) -> float:
    """The exact expected cost of ``rule``'s thresholds under other stage ``costs`` (the same
    decisions, costed by other — e.g. freshly measured — times)."""
    return float(Stages(costs, fading).evaluate(rule.thresholds, rule.last)[0])


def best_fixed_rule(
    costs: StoppingCosts, fading: Fading, mean_gain: float, last: int | None = None
) -> ThresholdRule:
    """The split that is best for the mean channel, kept whatever the channel does."""
    last = check_last(costs, last)
    stage = int(np.argmin([float(costs.stop_cost(s, mean_gain)) for s in range(last + 1)]))
    return fixed_rule(costs, fading, stage, "fixed", last)


def myopic_rule(
    costs: StoppingCosts, fading: Fading, mean_gain: float, last: int | None = None
) -> ThresholdRule:
    """Certainty equivalence: stop at l iff Y_l(h_l) is no more than the best later stage would
    cost at the mean channel."""
    last = check_last(costs, last)
    stages = Stages(costs, fading)
    thresholds = np.full(last + 1, fading.h_min)
    for stage in range(last):
        later = min(float(costs.stop_cost(s, mean_gain)) for s in range(stage + 1, last + 1))
        thresholds[stage] = max(stages.threshold(stage, later), fading.h_min)
    return ThresholdRule("myopic", last, thresholds, stages.evaluate(thresholds, last))
