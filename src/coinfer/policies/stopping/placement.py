"""Model placement: how many layers L̄ to store on the device, trading each task's expected cost
against downloading those layers' parameters after every model update; the closed form for a
chain of equal layers."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from coinfer.errors import BadValueError
from coinfer.graph.partitioning import Partitioning
from coinfer.policies.stopping.costs import Fading, StoppingCosts
from coinfer.policies.stopping.rules import Stages, optimal_rule, quad


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
    stages = Stages(costs, fading)
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
        inverse_rate = quad(
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
