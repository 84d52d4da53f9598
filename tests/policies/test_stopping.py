"""Optimal stopping for online splitting: costs, thresholds, the optimal rule against its
baselines, and analytic expectations against Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinfer import Partitioning, partition, zoo
from coinfer.latency.channels import MarkovChannel, RayleighChannel, RicianChannel
from coinfer.latency.devices import resolve_device
from coinfer.latency.wireless import Radio
from coinfer.policies.stopping.costs import StoppingCosts, chain_costs, model_costs
from coinfer.policies.stopping.markov import markov_baselines, markov_optimal_rule
from coinfer.policies.stopping.placement import model_layer_param_bits, placement_costs
from coinfer.policies.stopping.rules import (
    best_fixed_rule,
    fixed_rule,
    myopic_rule,
    optimal_rule,
    osla_rule,
)
from coinfer.sim import stages as mc

RADIO = Radio(bandwidth_hz=1e6, power_w=0.1, noise_w=1e-9)
MEAN_GAIN = 1e-7  # 10 dB mean SNR


def test_chain_costs_follow_the_formula() -> None:
    costs = chain_costs(
        [1.0, 2.0],
        [0.1, 0.2],
        [800.0, 400.0],
        compute_w=3.0,
        transmit_w=0.5,
        time_weight=2.0,
        radio=RADIO,
    )
    # G_l = Σ_{i<=l} (e_i + w τ_i) + w Σ_{i>l} s_i with e_i = 3 τ_i, w = 2
    assert costs.fixed == pytest.approx([2 * 0.3, 5 * 1 + 2 * 0.2, 5 * 3])
    assert list(costs.bits) == [800.0, 400.0, 0.0] and costs.k == 2.5
    assert float(costs.stop_cost(2, 1e-9)) == 15.0  # all on the device: nothing to send
    rate = float(RADIO.rate_bps(1e-7))
    assert float(costs.stop_cost(1, 1e-7)) == pytest.approx(5.4 + 2.5 * 400 / rate)


def _costs(part: Partitioning) -> StoppingCosts:
    """Stage costs on the experiment's classes: an edge-pc/8 device at 2 W, an edge-pc edge."""
    device, edge = resolve_device("edge-pc/8"), resolve_device("edge-pc")
    return model_costs(
        part, device, edge, compute_w=2.0, transmit_w=RADIO.power_w, time_weight=1.0, radio=RADIO
    )


@pytest.fixture(scope="module", params=["mlp", "alexnet", "vgg16"])
def costs(request: pytest.FixtureRequest) -> StoppingCosts:
    part = partition(zoo.create(request.param), zoo.example_inputs(request.param))
    return _costs(part)


CHANNELS: list[RayleighChannel | RicianChannel] = [
    RayleighChannel(MEAN_GAIN, 0.01 * MEAN_GAIN),
    RicianChannel(3.0, MEAN_GAIN, 0.01 * MEAN_GAIN),
]


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.name)
def test_optimal_rule_beats_every_baseline_and_meets_its_thresholds(
    costs: StoppingCosts, channel: RayleighChannel | RicianChannel
) -> None:
    opt = optimal_rule(costs, channel)
    baselines = [
        osla_rule(costs, channel),
        myopic_rule(costs, channel, MEAN_GAIN),
        best_fixed_rule(costs, channel, MEAN_GAIN),
        fixed_rule(costs, channel, 0, "edge-only"),
        fixed_rule(costs, channel, costs.layers, "device-only"),
    ]
    for rule in baselines:
        assert opt.cost <= rule.cost + 1e-12, rule.name
    for stage in range(opt.last):  # γ_l = (σ²/P)(2^{k D_l / (B (EV_{l+1} − G_l))} − 1)
        gap = opt.expected[stage + 1] - costs.fixed[stage]
        exponent = costs.k * costs.bits[stage] / (RADIO.bandwidth_hz * gap) if gap > 0 else math.inf
        gamma = RADIO.noise_w / RADIO.power_w * (2**exponent - 1) if exponent < 1000 else math.inf
        assert opt.thresholds[stage] == pytest.approx(max(gamma, channel.h_min))


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.name)
def test_monte_carlo_agrees_with_the_analytic_cost(
    costs: StoppingCosts, channel: RayleighChannel | RicianChannel
) -> None:
    rng = np.random.default_rng(7)
    opt = optimal_rule(costs, channel)
    for rule in (opt, osla_rule(costs, channel)):
        draws = mc.simulate_rule(rule, costs, channel.sample, channel.h_min, 200_000, rng)
        se = draws.std() / math.sqrt(len(draws))
        assert abs(draws.mean() - rule.cost) < 4 * se + 1e-12, rule.name
    prophet = mc.simulate_prophet(costs, channel.sample, channel.h_min, costs.layers, 200_000, rng)
    assert prophet.mean() <= opt.cost + 4 * prophet.std() / math.sqrt(len(prophet))


def test_placement_bounds_the_stopping_stage() -> None:
    part = partition(zoo.create("alexnet"), zoo.example_inputs("alexnet"))
    costs = _costs(part)
    channel = CHANNELS[0]
    short = optimal_rule(costs, channel, last=4)
    assert short.last == 4 and len(short.thresholds) == 5
    draws = mc.simulate_rule(
        short, costs, channel.sample, channel.h_min, 1000, np.random.default_rng(0)
    )
    assert np.all(np.isfinite(draws))
    assert short.cost >= optimal_rule(costs, channel).cost - 1e-12  # less room, no gain
    with pytest.raises(ValueError, match=r"0\.\.23"):
        optimal_rule(costs, channel, last=24)


def test_markov_channel_rule_is_exact_against_simulation() -> None:
    part = partition(zoo.create("alexnet"), zoo.example_inputs("alexnet"))
    costs = _costs(part)
    channel = MarkovChannel.from_lists(
        [0.2 * MEAN_GAIN, MEAN_GAIN, 3 * MEAN_GAIN],
        [[0.7, 0.3, 0.0], [0.2, 0.6, 0.2], [0.0, 0.3, 0.7]],
    )
    rule = markov_optimal_rule(costs, channel)
    rng = np.random.default_rng(3)
    gains = np.asarray(channel.gains)
    realised = []
    for _ in range(20_000):
        states = channel.sample_states(rng, rule.last + 1)
        stage = next(i for i in range(rule.last + 1) if rule.stop[i, states[i]])
        realised.append(float(costs.stop_cost(stage, gains[states[stage]])))
    se = np.std(realised) / math.sqrt(len(realised))
    assert abs(np.mean(realised) - rule.cost) < 4 * se
    # waiting for the good state pays: better than stopping in whatever state comes first
    assert rule.cost < float(channel.stationary() @ costs.stop_cost(0, gains))


def test_more_tasks_per_model_update_place_more_layers_on_the_device() -> None:
    part = partition(zoo.create("alexnet"), zoo.example_inputs("alexnet"))
    costs = _costs(part)
    bits = model_layer_param_bits(part)
    assert sum(bits) == pytest.approx(8.0 * part.cuts[-1].device_param_bytes)
    channel = CHANNELS[0]
    chosen = []
    for tasks in (1, 100, 10_000, 1_000_000):
        per_task = placement_costs(costs, channel, bits, 20e6, 1.0, tasks)
        nothing_stored = fixed_rule(costs, channel, 0, last=0).cost
        assert per_task[0] == pytest.approx(nothing_stored)
        chosen.append(int(np.argmin(per_task)))
    assert chosen == sorted(chosen) and chosen[0] < chosen[-1]
    with pytest.raises(ValueError, match="23 layers"):
        placement_costs(costs, channel, bits[:-1], 20e6, 1.0, 10)


def test_markov_baselines_exact_and_simulated_on_shared_paths() -> None:
    part = partition(zoo.create("mlp"), zoo.example_inputs("mlp"))
    costs = _costs(part)
    channel = MarkovChannel.from_lists(
        [0.1 * MEAN_GAIN, MEAN_GAIN, 3 * MEAN_GAIN],
        [[0.7, 0.3, 0.0], [0.2, 0.6, 0.2], [0.0, 0.3, 0.7]],
    )
    rules = [markov_optimal_rule(costs, channel), *markov_baselines(costs, channel)]
    assert [r.name for r in rules] == [
        "optimal",
        "osla",
        "myopic",
        "fixed",
        "edge-only",
        "device-only",
    ]
    assert all(rules[0].cost <= r.cost + 1e-15 for r in rules)
    assert rules[-1].cost == pytest.approx(float(costs.fixed[-1]))  # device-only sends nothing
    realised, prophet = mc.simulate_markov(rules, costs, channel, 100_000, np.random.default_rng(5))
    for rule, draws in zip(rules, realised, strict=True):
        se = draws.std() / math.sqrt(len(draws))
        assert abs(draws.mean() - rule.cost) <= 4 * se + 1e-12, rule.name
    assert np.all(prophet <= realised[0] + 1e-15)  # the prophet never loses on a shared path
