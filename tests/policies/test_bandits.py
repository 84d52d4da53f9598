"""LinUCB and μLinUCB: the numerics, the ANS rules, and learning against a real model's cuts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinfer import Partitioning, partition, zoo
from coinfer.policies import Action, Context, Feedback
from coinfer.policies.bandits import LinUCB, RidgeStats, TunedMuLinUCB, scaled_features


@pytest.fixture(scope="module")
def vgg() -> Partitioning:
    return partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))


def test_sherman_morrison_matches_the_inverse() -> None:
    rng = np.random.default_rng(0)
    stats = RidgeStats(7, lam=1.0)
    for _ in range(500):
        stats.update(rng.random(7), float(rng.random()))
    assert np.allclose(stats.a_inv, np.linalg.inv(stats.a), atol=1e-9)
    discounted = RidgeStats(7, lam=1.0, discount=0.95)
    for _ in range(50):
        discounted.update(rng.random(7), 1.0)
    assert np.allclose(discounted.a_inv @ discounted.a, np.eye(7), atol=1e-9)


def test_features_are_scaled_to_the_unit_interval(vgg: Partitioning) -> None:
    x = scaled_features(vgg.cuts)
    assert x.shape == (23, 7)
    assert x.min() >= 0 and np.allclose(x.max(axis=0), 1.0)
    assert np.all(x[-1, :6] == 0)  # on-device: no edge work; it still "sends" the output
    assert not np.any(LinUCB(vgg.cuts, [0.0] * vgg.num_cuts).x[-1])  # but the edge sees none


def test_alpha_horizon_and_forced_sampling_follow_the_paper(vgg: Partitioning) -> None:
    front = [0.01 * c.index for c in vgg.cuts]
    policy = TunedMuLinUCB(vgg.cuts, front)
    d, c_x = 7, policy.c_x
    expected = (1 + 0.05 * math.sqrt(d * math.log((1 + 200 * c_x**2) / 0.1))) / (1 - 0.8)
    assert policy.alpha == pytest.approx(expected)
    assert policy.forced_period == math.ceil(200**0.25) == 4
    policy.front[:] = 0.0
    policy.front[-1] = -100.0  # make on-device look unbeatable
    picks = [policy.select(Context(frame=i, key_weight=0.8)).cut for i in range(1, 201)]
    forced = picks[3::4]
    assert all(p != vgg.last for p in forced)
    assert all(p == vgg.last for i, p in enumerate(picks) if (i + 1) % 4)
    policy.select(Context(frame=201))
    assert policy.horizon == 400 and policy.forced_period == math.ceil(400**0.25)


def _run(
    policy: LinUCB, true_theta: np.ndarray, frames: int, rng: np.random.Generator
) -> list[int]:
    picks = []
    for i in range(frames):
        action = policy.select(Context(frame=i, key_weight=0.8 if i % 10 == 0 else 0.2))
        edge = float(policy.x[action.cut] @ true_theta) if action.cut != policy.last else 0.0
        noisy = max(0.0, edge + rng.normal(0, 0.01))
        policy.update(action, Feedback(float(policy.front[action.cut]), noisy, 0.0, 0.0, 1))
        picks.append(action.cut)
    return picks


def test_mulinucb_finds_the_best_cut_and_moves_to_the_device(vgg: Partitioning) -> None:
    rng = np.random.default_rng(1)
    x = scaled_features(vgg.cuts)
    front = [0.05 * c.index for c in vgg.cuts]  # device time grows with the cut
    fast_edge = np.array([0.3, 0.0, 0.05, 0.0, 0.05, 0.0, 2.0])  # bytes dominate, edge fast
    slow_edge = 200 * fast_edge  # the edge (and link) become slow

    def best(theta: np.ndarray) -> int:
        delays = np.array(front) + x @ theta
        delays[-1] = front[-1]
        return int(np.argmin(delays))

    policy = TunedMuLinUCB(vgg.cuts, front)  # the paper's version (no discount)
    picks = _run(policy, fast_edge, 600, rng)
    assert np.mean(np.array(picks[-200:]) == best(fast_edge)) > 0.7
    picks = _run(policy, slow_edge, 600, rng)
    assert np.mean(np.array(picks[-200:]) == vgg.last) > 0.7  # work moves to the device
    # Coming back when the edge is fast again is the discounted version's job (next test):
    # without a discount, 1,200 frames of history keep the estimates stale for a long time.


def test_discounted_mulinucb_is_never_trapped_on_the_device(vgg: Partitioning) -> None:
    rng = np.random.default_rng(2)
    front = [0.05 * c.index for c in vgg.cuts]
    fast_edge = np.array([0.3, 0.0, 0.05, 0.0, 0.05, 0.0, 2.0])
    policy = TunedMuLinUCB(vgg.cuts, front, discount=0.98)
    _run(policy, 200 * fast_edge, 600, rng)
    picks = _run(policy, fast_edge, 600, rng)
    assert np.mean(np.array(picks[-200:]) != vgg.last) > 0.7


def test_updates_only_on_offloaded_frames(vgg: Partitioning) -> None:
    policy = LinUCB(vgg.cuts, [0.0] * vgg.num_cuts)
    before = policy.stats.a.copy()
    policy.update(Action(vgg.last), Feedback(1.0, 0.0, 0.0, 0.0, 0))
    assert np.array_equal(policy.stats.a, before)
    policy.update(Action(3), Feedback(0.1, 0.2, 0.3, 0.0, 100))
    assert not np.array_equal(policy.stats.a, before)
    assert policy.stats.b @ policy.x[3] > 0


def test_reply_is_averaged_apart_and_evidence_ages_on_device_frames(vgg: Partitioning) -> None:
    policy = LinUCB(vgg.cuts, [0.0] * vgg.num_cuts, discount=0.9)
    policy.update(Action(3), Feedback(0.1, 0.2, 0.3, 0.4, 100))
    assert policy.reply == pytest.approx(4.0)  # 0.4 s in units of 0.1 s
    scores = policy.scores(Context())
    assert scores[vgg.last] == 0.0  # the device's own cut never pays for a reply
    a_before = policy.stats.a.copy()
    policy.update(Action(vgg.last), Feedback(1.0, 0.0, 0.0, 0.0, 0))  # a frame on the device
    assert np.all(np.diag(policy.stats.a) < np.diag(a_before))  # evidence got older
    assert policy.reply == pytest.approx(4.0)  # the mean itself is unchanged by ageing
    assert np.allclose(policy.stats.a_inv @ policy.stats.a, np.eye(7))
    stationary = LinUCB(vgg.cuts, [0.0] * vgg.num_cuts)  # γ = 1: nothing ages
    stationary.update(Action(3), Feedback(0.1, 0.2, 0.3, 0.4, 100))
    a_before = stationary.stats.a.copy()
    stationary.update(Action(vgg.last), Feedback(1.0, 0.0, 0.0, 0.0, 0))
    assert np.array_equal(stationary.stats.a, a_before)


def test_link_feature_is_the_upload_time_at_the_measured_rate(vgg: Partitioning) -> None:
    policy = TunedMuLinUCB(vgg.cuts, [0.0] * vgg.num_cuts, link_feature=True)
    assert policy.x.shape == (23, 8) and not policy.x[:, -1].any()  # nothing measured yet
    sent = vgg.cuts[18].boundary_bytes
    policy.update(Action(18), Feedback(0.5, 8.0 * sent / 2e6, 0.1, 0.01, sent))
    assert policy.link_bps == pytest.approx(2e6)
    policy.scores(Context())
    expected = 8.0 * vgg.cuts[5].boundary_bytes / 2e6 / 0.1
    assert policy.x[5, -1] == pytest.approx(expected)
    assert policy.x[vgg.last, -1] == 0.0
