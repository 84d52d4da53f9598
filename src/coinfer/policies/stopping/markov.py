"""The stopping rules on a finite-state Markov channel: exact by backward induction on (stage,
state), the expectations finite sums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from coinfer.policies.stopping.costs import StoppingCosts
from coinfer.policies.stopping.rules import check_last


class FiniteStateChannel(Protocol):
    """A channel with finitely many gains that moves between them as a Markov chain."""

    @property
    def gains(self) -> tuple[float, ...]: ...

    @property
    def matrix(self) -> np.ndarray: ...

    def stationary(self) -> np.ndarray: ...


@dataclass(frozen=True)
class MarkovRule:
    """A rule on a finite-state Markov channel: stop at stage l in state s iff ``stop[l, s]``;
    ``value[l, s]`` is its exact expected cost from there."""

    name: str
    last: int
    stop: np.ndarray
    value: np.ndarray
    start: np.ndarray  # the law of the first stage's state

    @property
    def cost(self) -> float:
        return float(self.start @ self.value[0])


def markov_rule(
    name: str, costs: StoppingCosts, channel: FiniteStateChannel, stop: np.ndarray
) -> MarkovRule:
    """Exact expected cost of any stop-set rule on the chain: V_l(s) = Y_l(g_s) where it stops,
    Σ_s' P[s, s'] V_{l+1}(s') where it goes on; it stops in every state at the last stage."""
    stop = np.array(stop, dtype=bool)
    last = stop.shape[0] - 1
    stop[last] = True
    gains = np.asarray(channel.gains, dtype=float)
    value = np.empty(stop.shape)
    value[last] = costs.stop_cost(last, gains)
    for stage in range(last - 1, -1, -1):
        later = channel.matrix @ value[stage + 1]
        value[stage] = np.where(stop[stage], costs.stop_cost(stage, gains), later)
    return MarkovRule(name, last, stop, value, channel.stationary())


def markov_optimal_rule(
    costs: StoppingCosts, channel: FiniteStateChannel, last: int | None = None
) -> MarkovRule:
    """Backward induction on (stage, state): V_L̄(s) = Y_L̄(g_s), V_l(s) = min(Y_l(g_s),
    Σ_s' P[s, s'] V_{l+1}(s')) — exact, the expectations are finite sums. The first state is
    drawn from the chain's stationary law."""
    last = check_last(costs, last)
    gains = np.asarray(channel.gains, dtype=float)
    value = np.empty((last + 1, len(gains)))
    stop = np.zeros((last + 1, len(gains)), dtype=bool)
    value[last] = costs.stop_cost(last, gains)
    stop[last] = True
    for stage in range(last - 1, -1, -1):
        now = costs.stop_cost(stage, gains)
        later = channel.matrix @ value[stage + 1]
        stop[stage] = now <= later
        value[stage] = np.minimum(now, later)
    return MarkovRule("optimal", last, stop, value, channel.stationary())


def markov_baselines(
    costs: StoppingCosts, channel: FiniteStateChannel, last: int | None = None
) -> list[MarkovRule]:
    """OSLA (stop iff Y_l(g_s) ≤ E[Y_{l+1} | s]), myopic and the best fixed split (at the
    stationary mean gain), edge-only and device-only, as stop sets on the chain."""
    last = check_last(costs, last)
    gains = np.asarray(channel.gains, dtype=float)
    mean = float(channel.stationary() @ gains)
    now = np.stack([costs.stop_cost(stage, gains) for stage in range(last + 1)])
    at_mean = np.array([float(costs.stop_cost(stage, mean)) for stage in range(last + 1)])
    osla = np.zeros_like(now, dtype=bool)
    myopic = np.zeros_like(now, dtype=bool)
    for stage in range(last):
        osla[stage] = now[stage] <= channel.matrix @ now[stage + 1]
        myopic[stage] = now[stage] <= at_mean[stage + 1 :].min()
    fixed_at = int(np.argmin(at_mean))
    stages = np.arange(last + 1)[:, None] * np.ones(len(gains), dtype=int)
    return [
        markov_rule("osla", costs, channel, osla),
        markov_rule("myopic", costs, channel, myopic),
        markov_rule("fixed", costs, channel, stages >= fixed_at),
        markov_rule("edge-only", costs, channel, stages >= 0),
        markov_rule("device-only", costs, channel, stages >= costs.layers),
    ]
