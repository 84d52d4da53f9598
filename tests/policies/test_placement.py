"""Model placement: the equal-width chain's closed-form L̄* equals the numeric optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from coinfer.latency.channels import RayleighChannel, RicianChannel
from coinfer.latency.wireless import Radio
from coinfer.policies.stopping.costs import chain_costs
from coinfer.policies.stopping.placement import equal_chain_placement, placement_costs

RADIO = Radio(bandwidth_hz=1e6, power_w=0.1, noise_w=1e-9)
LAYER_BITS = 32.0 * 1024 * 1024  # a 1024-wide layer's weights in float32


GRID = list(
    itertools.product(
        [6, 12], [0.01, 0.05], [0.002, 0.01], [8e3, 64e3], [0.5, 2.0], [1e-8, 1e-7, 1e-6]
    )
)


@pytest.mark.parametrize(("layers", "tau", "edge_s", "bits", "weight", "mean_gain"), GRID)
def test_closed_form_placement_equals_the_numeric_optimum(
    layers: int, tau: float, edge_s: float, bits: float, weight: float, mean_gain: float
) -> None:
    costs = chain_costs(
        [tau] * layers, [edge_s] * layers, [bits] * layers, 2.0, RADIO.power_w, weight, RADIO
    )
    for channel in (
        RayleighChannel(mean_gain, 0.01 * mean_gain),
        RicianChannel(2.0, mean_gain, 0.01 * mean_gain),
    ):
        for tasks in (10, 1_000, 100_000):
            numeric = placement_costs(costs, channel, [LAYER_BITS] * layers, 20e6, 1.0, tasks)
            closed = equal_chain_placement(costs, channel, LAYER_BITS, 20e6, 1.0, tasks)
            assert numeric[closed] == pytest.approx(numeric.min(), rel=1e-9, abs=1e-12)


def test_closed_form_needs_equal_layers() -> None:
    costs = chain_costs([0.01, 0.02], [0.01, 0.01], [8e3, 8e3], 2.0, 0.1, 1.0, RADIO)
    with pytest.raises(ValueError, match="equal layers"):
        equal_chain_placement(costs, RayleighChannel(1e-7, 1e-9), LAYER_BITS, 20e6, 1.0, 10)
    assert np.isfinite(costs.fixed).all()
