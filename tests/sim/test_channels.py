"""Fading channels and Shannon's rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from coinfer.latency.channels import MarkovChannel, RayleighChannel, RicianChannel
from coinfer.latency.wireless import Radio


def test_shannon_rate_and_its_inverse() -> None:
    radio = Radio(bandwidth_hz=1e6, power_w=0.1, noise_w=1e-9)
    assert float(radio.rate_bps(1e-8)) == pytest.approx(1e6 * math.log2(2.0))  # SNR 1
    assert radio.gain_for_rate(float(radio.rate_bps(3e-7))) == pytest.approx(3e-7)
    assert radio.snr_db(1e-7) == pytest.approx(10.0)


def test_rayleigh_moments_and_outage() -> None:
    ch = RayleighChannel(mean_gain=2e-7, h_min=2e-9)
    draws = ch.sample(np.random.default_rng(0), 200_000)
    assert draws.mean() == pytest.approx(2e-7, rel=0.01)
    assert ch.outage == pytest.approx(1 - math.exp(-0.01))
    assert np.mean(draws < ch.h_min) == pytest.approx(ch.outage, abs=0.001)
    with pytest.raises(ValueError, match="outage"):
        RayleighChannel(1e-7, 0.0)


def test_rician_density_matches_scipy_and_reduces_to_rayleigh() -> None:
    ch = RicianChannel(k_factor=3.0, mean_gain=1.0, h_min=0.01)
    total, _ = integrate.quad(ch.pdf, 0, math.inf)
    assert total == pytest.approx(1.0, abs=1e-9)
    reference = stats.ncx2(df=2, nc=6.0, scale=1.0 / 8.0)
    for h in (0.05, 0.5, 1.0, 3.0):
        assert ch.pdf(h) == pytest.approx(reference.pdf(h), rel=1e-9)
    draws = ch.sample(np.random.default_rng(1), 100_000)
    assert draws.mean() == pytest.approx(1.0, rel=0.01)
    assert draws.var() < 1.0  # a line of sight: less spread than Rayleigh (variance 1)
    rayleigh = RayleighChannel(1.0, 0.01)
    flat = RicianChannel(0.0, 1.0, 0.01)
    assert flat.pdf(0.7) == pytest.approx(rayleigh.pdf(0.7)) and flat.outage == pytest.approx(
        rayleigh.outage
    )


def test_markov_channel_path_follows_its_chain() -> None:
    ch = MarkovChannel.from_lists(
        [1e-8, 1e-7, 5e-7], [[0.8, 0.2, 0.0], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7]]
    )
    pi = ch.stationary()
    assert pi @ ch.matrix == pytest.approx(pi) and pi.sum() == pytest.approx(1.0)
    path = ch.sample_states(np.random.default_rng(2), 50_000)
    assert np.bincount(path, minlength=3) / len(path) == pytest.approx(pi, abs=0.02)
    assert not np.any((path[:-1] == 0) & (path[1:] == 2))  # no jump the matrix forbids
    with pytest.raises(ValueError, match="row-stochastic"):
        MarkovChannel.from_lists([1.0, 2.0], [[0.5, 0.4], [0.5, 0.5]])


def test_the_stage_wise_environment_agrees_with_the_vectorised_monte_carlo() -> None:
    """The rules run task by task through the one loop (StageEnv) cost what the vectorised
    Monte Carlo and the exact expectation say."""
    from coinfer import partition, zoo
    from coinfer.latency.devices import resolve_device
    from coinfer.latency.predict import CutCostModel
    from coinfer.policies.loop import run_loop
    from coinfer.policies.stopping.costs import COMPUTE_W, RADIO, gain_for_snr, model_costs
    from coinfer.policies.stopping.policy import ThresholdPolicy
    from coinfer.policies.stopping.rules import optimal_rule, osla_rule
    from coinfer.sim.stages import StageEnv

    part = partition(zoo.create("mlp"), zoo.example_inputs("mlp"))
    device, edge = resolve_device("rpi3"), resolve_device("edge-pc")
    costs = model_costs(part, device, edge, COMPUTE_W, RADIO.power_w, 1.0, RADIO)
    channel = RayleighChannel(gain_for_snr(10.0), 0.01 * gain_for_snr(10.0))
    times = CutCostModel(part, device, edge)
    tau, s = np.diff(times.device_s), -np.diff(times.edge_s)
    for rule in (optimal_rule(costs, channel), osla_rule(costs, channel)):
        env = StageEnv(costs, tau, s, COMPUTE_W, channel.sample, channel.h_min, seed=3)
        run_loop(env, ThresholdPolicy(rule), 4000)
        draws = np.asarray(env.task_costs)
        half = 1.96 * draws.std() / np.sqrt(len(draws))
        assert abs(draws.mean() - rule.cost) < max(half, 1e-9) * 1.5, (rule.name, draws.mean())
