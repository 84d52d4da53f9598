"""The single-device simulator: truth, clock, noise, load and link schedules, the Oracle."""

from __future__ import annotations

import numpy as np
import pytest

from coinfer import Partitioning, partition, zoo
from coinfer.latency.devices import EDGE_PC, RPI3
from coinfer.latency.link import ConstantBandwidth, Link
from coinfer.latency.predict import predict_cut_costs
from coinfer.latency.traces import markov_bandwidth, step_bandwidth
from coinfer.policies import Action
from coinfer.policies.bandits import TunedMuLinUCB
from coinfer.policies.static import FixedCut, Oracle
from coinfer.sim.env import SimEnv, step_load
from coinfer.sim.scoring import run_policy


@pytest.fixture(scope="module")
def part() -> Partitioning:
    return partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))


def test_truth_clock_and_noise(part: Partitioning) -> None:
    link = Link(ConstantBandwidth(5e6), rtt_s=0.02)
    env = SimEnv(part, RPI3, EDGE_PC, link)
    truth = env.expected_delays()
    assert np.allclose(truth, [c.total_s for c in predict_cut_costs(part, RPI3, EDGE_PC, link)])
    fb = env.step(Action(3))
    assert fb.total_s == pytest.approx(truth[3])  # no noise: the truth exactly
    assert env.time_s == pytest.approx(truth[3]) and env.frame == 1
    noisy = [
        SimEnv(part, RPI3, EDGE_PC, link, noise=0.1, seed=s).step(Action(3)).total_s
        for s in range(30)
    ]
    assert np.std(noisy) > 0 and abs(np.mean(noisy) / truth[3] - 1) < 0.1
    again = [
        SimEnv(part, RPI3, EDGE_PC, link, noise=0.1, seed=s).step(Action(3)).total_s
        for s in range(30)
    ]
    assert noisy == again  # deterministic for a seed
    slow_source = SimEnv(part, RPI3, EDGE_PC, link, frame_interval_s=100.0)
    slow_source.step(Action(0))
    assert slow_source.time_s == 100.0
    with pytest.raises(ValueError, match=r"0\.\.22"):
        env.step(Action(23))


def test_edge_load_and_link_schedules_move_the_oracle(part: Partitioning) -> None:
    link = Link(step_bandwidth([(0.0, 50e6), (1000.0, 50e3)]))
    env = SimEnv(part, RPI3, EDGE_PC, link, edge_load=step_load([(0.0, 1.0), (500.0, 300.0)]))
    early = int(np.argmin(env.expected_delays()))
    env.time_s = 600.0
    loaded = int(np.argmin(env.expected_delays()))
    env.time_s = 2000.0
    slow_link = int(np.argmin(env.expected_delays()))
    assert early == 0 and loaded > early and slow_link == part.last
    assert env.observe().extra["bandwidth_bps"] == 50e3


def test_markov_link_is_deterministic_and_visits_its_states() -> None:
    a = markov_bandwidth([1e6, 5e6], [[0.9, 0.1], [0.2, 0.8]], dwell_s=1.0, horizon_s=500, seed=3)
    b = markov_bandwidth([1e6, 5e6], [[0.9, 0.1], [0.2, 0.8]], dwell_s=1.0, horizon_s=500, seed=3)
    assert a.bps == b.bps and set(a.bps) == {1e6, 5e6}
    share_fast = np.mean(np.array(a.bps) == 5e6)
    assert 0.2 < share_fast < 0.5  # stationary share 1/3
    with pytest.raises(ValueError, match="row-stochastic"):
        markov_bandwidth([1e6, 5e6], [[0.5, 0.6], [0.2, 0.8]])


def test_oracle_has_no_regret_and_baselines_do(part: Partitioning) -> None:
    def env() -> SimEnv:
        return SimEnv(part, RPI3, EDGE_PC, Link(ConstantBandwidth(2e6)), noise=0.05, seed=1)

    e = env()
    oracle = run_policy(e, Oracle(e.expected_delays), 50)
    assert oracle.regret_s == pytest.approx(0.0) and oracle.oracle_match == 1.0
    device = run_policy(env(), FixedCut(part.last), 50)
    assert device.regret_s > 0 and device.mean_delay_s > oracle.mean_delay_s


def test_mulinucb_learns_in_the_simulator(part: Partitioning) -> None:
    e = SimEnv(part, RPI3, EDGE_PC, Link(ConstantBandwidth(2e6)), noise=0.05, seed=2)
    front = [c.device_s for c in e.costs()]
    stats = run_policy(e, TunedMuLinUCB(part.cuts, front), 600)
    late = np.array(stats.cuts[-200:])
    best = int(np.argmin(e.expected_delays()))
    assert np.mean(late == best) > 0.7
