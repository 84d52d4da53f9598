"""Online model splitting as optimal stopping (Yan, Bi, Zhang, DESIGN §4).

A chain of N layers, of which the first L̄ are stored on the device. At stage l (l layers done
on the device) the device sees the channel gain h_l and either stops — uploads the D_l bits of
the boundary and lets the edge run layers l+1..N — or computes layer l+1. Stopping at l costs

    Y_l(h) = G_l + k·D_l / R(h),  G_l = Σ_{i≤l} (e_i + w·τ_i) + w·Σ_{i>l} s_i,  k = P_tx + w,

energy plus w times the time. The optimal rule follows from backward induction,
EV_L̄ = E[Y_L̄(h)], EV_l = E[min(Y_l(h), EV_{l+1})]: stop at l iff h ≥ γ_l with
γ_l = (σ²/P)(2^{k·D_l / (B·(EV_{l+1} − G_l))} − 1). Expectations are integrals over the fading
density (adaptive quadrature), not Monte Carlo.

Outage (why and how: ``coinfer.latency.channels``): a block with h < h_min carries nothing, so the
device computes on; at stage L̄ it has nothing left to compute and waits for a usable block,
paying w per second of waiting. Stage N (everything on the device) sends nothing: Y_N = G_N.

The Monte Carlo simulators of these rules live in ``coinfer.sim.stages``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import integrate

from coinfer.errors import BadValueError
from coinfer.graph.partition import Partitioning
from coinfer.latency.devices import DeviceModel
from coinfer.latency.predict import CutCostModel
from coinfer.latency.wireless import Radio
from coinfer.policies.types import Action, Context, Feedback

RADIO = Radio(bandwidth_hz=1e6, power_w=0.1, noise_w=1e-9)  # the uplink of every stopping run
COMPUTE_W = 2.0  # the device's power while computing (W)


def gain_for_snr(snr_db: float, radio: Radio = RADIO) -> float:
    """The mean channel gain at which the mean SNR is ``snr_db``."""
    return float(10 ** (snr_db / 10) * radio.noise_w / radio.power_w)


class Fading(Protocol):
    """An i.i.d. channel gain per stage with an outage threshold h_min; ``mean_gain`` sets the
    scale the integrals are taken in."""

    @property
    def h_min(self) -> float: ...

    @property
    def mean_gain(self) -> float: ...

    def pdf(self, h: float) -> float: ...

    @property
    def outage(self) -> float: ...


@dataclass(frozen=True)
class StoppingCosts:
    """The stage costs of one chain model: ``fixed[l]`` = G_l and ``bits[l]`` = D_l for
    l = 0..N (``bits[N]`` = 0), k = P_tx + w, the radio, and the block length (waiting)."""

    fixed: np.ndarray
    bits: np.ndarray
    transmit_w: float
    time_weight: float
    radio: Radio
    block_s: float

    @property
    def k(self) -> float:
        return self.transmit_w + self.time_weight

    @property
    def layers(self) -> int:
        return len(self.fixed) - 1

    def stop_cost(self, stage: int, gain: float | np.ndarray) -> np.ndarray:
        """Y_l(h) (infinite in outage is the caller's business: this is the formula)."""
        if self.bits[stage] == 0:
            return np.full_like(np.asarray(gain, dtype=float), self.fixed[stage])
        return np.asarray(
            self.fixed[stage] + self.k * self.bits[stage] / self.radio.rate_bps(gain), dtype=float
        )


def chain_costs(
    device_s: Sequence[float] | np.ndarray,
    edge_s: Sequence[float] | np.ndarray,
    bits: Sequence[float] | np.ndarray,
    compute_w: float,
    transmit_w: float,
    time_weight: float,
    radio: Radio,
    block_s: float = 0.01,
) -> StoppingCosts:
    """Stage costs from per-layer device times τ_i, edge times s_i (i = 1..N) and the bits D_l
    at each stage l = 0..N−1 (the device's energy per layer is e_i = compute_w·τ_i)."""
    tau = np.asarray(device_s, dtype=float)
    s = np.asarray(edge_s, dtype=float)
    if len(tau) != len(s) or len(bits) != len(tau):
        raise BadValueError("need N device times, N edge times and the bits at stages 0..N-1")
    device_part = np.concatenate([[0.0], np.cumsum((compute_w + time_weight) * tau)])
    edge_left = np.concatenate([np.cumsum(s[::-1])[::-1], [0.0]])  # Σ_{i>l} s_i
    fixed = device_part + time_weight * edge_left
    return StoppingCosts(
        fixed,
        np.append(np.asarray(bits, dtype=float), 0.0),
        transmit_w,
        time_weight,
        radio,
        block_s,
    )


def model_costs(
    part: Partitioning,
    device: DeviceModel,
    edge: DeviceModel,
    compute_w: float,
    transmit_w: float,
    time_weight: float,
    radio: Radio,
    block_s: float = 0.01,
) -> StoppingCosts:
    """Stage costs of a model's layer cuts (stage l = cut l), from the latency models."""
    tau, s, bits = chain_times(part, device, edge)
    return chain_costs(tau, s, bits, compute_w, transmit_w, time_weight, radio, block_s)


def chain_times(
    part: Partitioning, device: DeviceModel, edge: DeviceModel
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Each layer's device time τ_i and edge time s_i (i = 1..N) between a model's layer cuts,
    and the bits D_l each cut l = 0..N−1 sends, from the latency models."""
    model = CutCostModel(part, device, edge)
    tau = np.diff(np.asarray(model.device_s))
    s = -np.diff(np.asarray(model.edge_s))
    return tau, s, [8.0 * b for b in model.boundary_bytes[:-1]]


def _quad(f: Callable[[float], float], lo: float, hi: float, scale: float) -> float:
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


class _Stages:
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
        return _quad(self.fading.pdf, lo, math.inf, self.fading.mean_gain)

    def stop_integral(self, stage: int, lo: float) -> float:
        """E[Y_stage(h); h ≥ max(lo, h_min)]."""
        lo = max(lo, self.fading.h_min)
        if math.isinf(lo):
            return 0.0
        c = self.costs
        mass = self.tail_mass(lo)
        if c.bits[stage] == 0:
            return float(c.fixed[stage] * mass)
        inverse_rate = _quad(
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


def _check_last(costs: StoppingCosts, last: int | None) -> int:
    last = costs.layers if last is None else last
    if not 0 <= last <= costs.layers:
        raise BadValueError(f"the placement L̄ must be in 0..{costs.layers}, got {last}")
    return last


def optimal_rule(costs: StoppingCosts, fading: Fading, last: int | None = None) -> ThresholdRule:
    """Backward induction: γ_l from EV_{l+1}, EV_l = E[min(Y_l, EV_{l+1})]."""
    last = _check_last(costs, last)
    stages = _Stages(costs, fading)
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
    last = _check_last(costs, last)
    stages = _Stages(costs, fading)
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
    last = _check_last(costs, last)
    if not 0 <= stage <= last:
        raise BadValueError(f"a fixed split must be in 0..{last}, got {stage}")
    thresholds = np.where(np.arange(last + 1) < stage, math.inf, fading.h_min)
    return ThresholdRule(name, last, thresholds, _Stages(costs, fading).evaluate(thresholds, last))


def evaluate_rule(rule: ThresholdRule, costs: StoppingCosts, fading: Fading) -> float:
    """The exact expected cost of ``rule``'s thresholds under other stage ``costs`` (the same
    decisions, costed by other — e.g. freshly measured — times)."""
    return float(_Stages(costs, fading).evaluate(rule.thresholds, rule.last)[0])


def best_fixed_rule(
    costs: StoppingCosts, fading: Fading, mean_gain: float, last: int | None = None
) -> ThresholdRule:
    """The split that is best for the mean channel, kept whatever the channel does."""
    last = _check_last(costs, last)
    stage = int(np.argmin([float(costs.stop_cost(s, mean_gain)) for s in range(last + 1)]))
    return fixed_rule(costs, fading, stage, "fixed", last)


def myopic_rule(
    costs: StoppingCosts, fading: Fading, mean_gain: float, last: int | None = None
) -> ThresholdRule:
    """Certainty equivalence: stop at l iff Y_l(h_l) is no more than the best later stage would
    cost at the mean channel."""
    last = _check_last(costs, last)
    stages = _Stages(costs, fading)
    thresholds = np.full(last + 1, fading.h_min)
    for stage in range(last):
        later = min(float(costs.stop_cost(s, mean_gain)) for s in range(stage + 1, last + 1))
        thresholds[stage] = max(stages.threshold(stage, later), fading.h_min)
    return ThresholdRule("myopic", last, thresholds, stages.evaluate(thresholds, last))


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
    last = _check_last(costs, last)
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
    last = _check_last(costs, last)
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


def placement_costs(
    costs: StoppingCosts,
    fading: Fading,
    layer_param_bits: Sequence[float],
    download_rate_bps: float,
    receive_w: float,
    tasks_per_update: float,
) -> np.ndarray:
    """Expected cost per task for every placement L̄ = 0..N: the optimal rule's expected cost
    with L̄ layers on the device, plus downloading their parameters after each model update
    (receive energy + w × time at ``download_rate_bps``) shared by ``tasks_per_update`` tasks."""
    if len(layer_param_bits) != costs.layers:
        raise BadValueError(f"need the parameter bits of each of the {costs.layers} layers")
    if not (download_rate_bps > 0 and tasks_per_update > 0):
        raise BadValueError("the download rate and the tasks per model update must be positive")
    stored = np.concatenate([[0.0], np.cumsum(layer_param_bits)])
    download = (receive_w + costs.time_weight) * stored / download_rate_bps
    expected = [optimal_rule(costs, fading, last).cost for last in range(costs.layers + 1)]
    return np.asarray(expected) + download / tasks_per_update


def model_layer_param_bits(part: Partitioning) -> list[float]:
    """Parameter bits of each layer between consecutive cuts (what placing it downloads)."""
    device_bytes = [c.device_param_bytes for c in part.cuts]
    return [8.0 * (b - a) for a, b in itertools.pairwise(device_bytes)]


def equal_chain_placement(
    costs: StoppingCosts,
    fading: Fading,
    layer_param_bits: float,
    download_rate_bps: float,
    receive_w: float,
    tasks_per_update: float,
) -> int:
    """The best placement L̄* for a chain of equal layers (an MLP of equal width), without
    solving a stopping problem per L̄.

    With equal layers G_l = G_0 + lΔ (Δ = e + wτ − ws) and D_l = D, the excess a = EV − G over
    the current stage depends only on the stages left, j: a_0 = E[kD/R] (the forced stop, with
    outage waits), a_{j+1} = φ(Δ + a_j), φ(c) = E[min(kD/R(h), c)] (c in outage). φ is
    increasing with slope < 1, so the gains d_j = a_j − a_{j+1} of one more stored layer keep
    their sign and shrink: the per-task cost J(L̄) = G_0 + a_L̄ + L̄β, β = the amortised download
    of one layer, is convex below N, and L̄* = min{j : d_j ≤ β}, or N when storing everything
    (nothing to send at the end: a = T^N(0)) is cheaper still.
    """
    bits = costs.bits[:-1]
    steps = np.diff(costs.fixed)
    if not (np.allclose(bits, bits[0]) and np.allclose(steps, steps[0])):
        raise BadValueError("equal_chain_placement needs equal layers: the same D_l and G_l steps")
    n, kd, delta = costs.layers, costs.k * float(bits[0]), float(steps[0])
    stages = _Stages(costs, fading)
    beta = (receive_w + costs.time_weight) * layer_param_bits / download_rate_bps / tasks_per_update

    def phi(c: float) -> float:
        if c <= 0:
            return c
        t = max(
            costs.radio.gain_for_rate(kd / c)
            if kd / c / costs.radio.bandwidth_hz < 1000
            else math.inf,
            fading.h_min,
        )
        if math.isinf(t):
            return c
        mass = stages.tail_mass(t)
        inverse_rate = _quad(
            lambda h: fading.pdf(h) / float(costs.radio.rate_bps(h)), t, math.inf, fading.mean_gain
        )
        return c * (1.0 - mass) + kd * inverse_rate

    excess = [stages.must_stop(0) - float(costs.fixed[0])]  # a_0: the forced stop
    for _ in range(n - 1):
        excess.append(phi(delta + excess[-1]))
    crossing = next((j for j in range(n - 1) if excess[j] - excess[j + 1] <= beta), n - 1)
    full = 0.0  # storing all N layers: nothing is sent at the end
    for _ in range(n):
        full = phi(delta + full)
    return n if full + n * beta < excess[crossing] + crossing * beta else crossing


@dataclass(frozen=True)
class StageProblem:
    """What a stage-wise policy is built from: the stage costs and the channel's law."""

    costs: StoppingCosts
    fading: Fading


class ThresholdPolicy:
    """A threshold rule as a Policy in a stage-wise world: at stage l it stops (``Action(l)``)
    iff the gain it sees is at least γ_l, else it goes on (``Action(l + 1)``); at L̄ it stops."""

    def __init__(self, rule: ThresholdRule) -> None:
        self.rule = rule

    def select(self, ctx: Context) -> Action:
        if ctx.stage is None or ctx.gain is None:
            raise BadValueError(
                f"the {self.rule.name} rule decides stage by stage: it needs a "
                "stage-wise world (a channel, --channel rayleigh)"
            )
        stage = ctx.stage
        if stage >= self.rule.last or ctx.gain >= self.rule.thresholds[stage]:
            return Action(stage)
        return Action(stage + 1)

    def update(self, action: Action, fb: Feedback) -> None:
        """The rule is computed offline from the stage costs; nothing to learn online."""


def rule_of(policy: object, costs: StoppingCosts, fading: Fading, name: str) -> ThresholdRule:
    """The threshold rule a stage-wise policy follows, for its analytic cost: a rule's own, or
    — for a fixed cut in a stage-wise world (edge-only, device-only, fixed-K) — the fixed split
    at that cut."""
    if isinstance(policy, ThresholdPolicy):
        return policy.rule
    cut = policy.select(Context(stage=0, gain=math.inf)).cut  # type: ignore[attr-defined]
    return fixed_rule(costs, fading, min(cut, costs.layers), name)
