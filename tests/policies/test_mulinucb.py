"""μLinUCB as its authors built it: their rules, checked against the textbook formulas, and
numerics that hold where an explicit inverse of A does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinfer import Partitioning, partition, zoo
from coinfer.graph.types import ANS_FEATURES
from coinfer.policies import Action, Context, Feedback
from coinfer.policies.mulinucb import MuLinUCB


@pytest.fixture(scope="module")
def vgg() -> Partitioning:
    return partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))


def _raw(part: Partitioning) -> np.ndarray:
    x = np.array([c.feature_vector(ANS_FEATURES) for c in part.cuts], dtype=float)
    x[-1] = 0.0
    return x


def _prior(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 9, size=len(ANS_FEATURES)).astype(float)


def test_the_prior_is_a_random_integer_diagonal_drawn_from_the_seed(vgg: Partitioning) -> None:
    front = [0.01 * c.index for c in vgg.cuts]
    a, b, c = (MuLinUCB(vgg.cuts, front, seed=s) for s in (3, 3, 4))
    assert np.array_equal(a.r, b.r) and not np.array_equal(a.r, c.r)
    a0 = np.diag(a.r) ** 2 * a.scale**2  # back in the raw features' basis
    assert np.allclose(a0, _prior(3)) and set(np.round(a0)) <= set(range(1, 9))


def test_scores_are_the_textbook_formula_on_raw_features(vgg: Partitioning) -> None:
    """After offloads at every cut, A is well enough conditioned in the scaled basis for an
    explicit inverse there: the QR square root must give the same xᵀA⁻¹x and xᵀθ̂ — and
    those are the raw-feature quantities, the change of basis being exact."""
    rng = np.random.default_rng(0)
    front = [0.02 * c.index for c in vgg.cuts]
    policy = MuLinUCB(vgg.cuts, front, seed=5)
    raw, scale = _raw(vgg), policy.scale
    a = np.diag(_prior(5) / scale**2)
    b = np.zeros(raw.shape[1])
    for _ in range(3):
        for cut in range(vgg.last):
            up, edge, down = rng.random(3) * 0.1
            policy.update(Action(cut), Feedback(front[cut], up, edge, down, 1000))
            z = raw[cut] / scale
            a += np.outer(z, z)
            b += (up + edge + down) * z
    a_inv = np.linalg.inv(a)
    z_all = raw / scale
    quad = np.einsum("pi,ij,pj->p", z_all, a_inv, z_all)
    estimate = z_all @ a_inv @ b
    assert np.allclose(policy.quad, quad, rtol=1e-6)
    assert np.allclose(policy.estimate, estimate, rtol=1e-6, atol=1e-12)
    assert np.allclose(raw @ policy.theta, estimate, rtol=1e-6, atol=1e-12)
    ctx = Context(key_weight=0.2)
    expected = np.array(front) + estimate - policy.alpha * np.sqrt(0.8 * quad)
    assert np.allclose(policy.scores(ctx), expected, rtol=1e-6)
    assert policy.scores(ctx)[vgg.last] == pytest.approx(front[-1])  # nothing to learn there


def test_alpha_and_the_horizon_counter_follow_the_authors(vgg: Partitioning) -> None:
    policy = MuLinUCB(vgg.cuts, [0.01 * c.index for c in vgg.cuts])
    c_x = float(max(np.sum(_raw(vgg) ** 2, axis=1)))  # raw features: ~1e20
    assert c_x > 1e18 and policy.c_x == pytest.approx(c_x)
    expected = (1 + 0.05 * math.sqrt(7 * math.log((1 + 200 * c_x**2) / 0.1))) / (1 - 0.8)
    assert policy.alpha == pytest.approx(expected)
    assert policy.forced_period == 4
    policy.front[:] = 0.0
    policy.front[-1] = -1e30  # beats even the raw prior's bonus: only forced frames leave it
    picks = [policy.select(Context(key_weight=0.8)).cut for _ in range(200)]
    assert [i for i, p in enumerate(picks, 1) if p != vgg.last] == list(range(4, 201, 4))
    # frame 201 passes T = 200: T doubles, the counter restarts at 0 — a multiple of F
    assert policy.select(Context(key_weight=0.8)).cut != vgg.last
    assert policy.horizon == 400 and policy.counter == 0
    assert policy.forced_period == math.ceil(400**0.25) == 5
    picks = [policy.select(Context(key_weight=0.8)).cut for _ in range(10)]
    assert [i for i, p in enumerate(picks, 1) if p != vgg.last] == [5, 10]


def test_it_learns_the_offload_time_in_seconds_reply_included(vgg: Partitioning) -> None:
    """A linear truth in the raw features, reply included in the target: the learner must
    settle on the true best cut (its estimate of each cut's offload time is in seconds)."""
    rng = np.random.default_rng(1)
    raw = _raw(vgg)
    per_feature = np.array([2e-11, 0.0, 2e-10, 0.0, 1e-9, 0.0, 4e-7])  # s per MAC, ..., byte
    offload = raw @ per_feature
    front = 0.1 * np.arange(vgg.num_cuts)  # a slow device: the raw input to the edge pays
    truth = front + offload
    truth[-1] = front[-1]
    best = int(np.argmin(truth))
    assert best == 0 and np.sort(truth)[1] > 2 * truth[0]
    policy = MuLinUCB(vgg.cuts, list(front), seed=2)
    picks = []
    for i in range(1500):
        action = policy.select(Context(key_weight=0.8 if i % 10 == 0 else 0.2))
        if action.cut != vgg.last:
            seconds = offload[action.cut] * float(rng.lognormal(0, 0.05))
            policy.update(
                action, Feedback(front[action.cut], 0.6 * seconds, 0.3 * seconds, 0.1 * seconds, 1)
            )
        picks.append(action.cut)
    assert np.mean(np.array(picks[-300:]) == best) > 0.8
    learned = policy.estimate[best]
    assert learned == pytest.approx(offload[best], rel=0.2)


def test_a_degenerate_history_neither_crashes_nor_goes_non_finite(vgg: Partitioning) -> None:
    """Thousands of offloads at one cut: A is rank one plus a prior twenty orders of magnitude
    smaller (raw features). An explicit inverse of A is garbage there; the scores stay finite
    and the unexplored cuts keep their huge bonus."""
    policy = MuLinUCB(vgg.cuts, [0.01] * vgg.num_cuts)
    for _ in range(5000):
        policy.update(Action(5), Feedback(0.01, 0.02, 0.03, 0.001, 100))
    scores = policy.scores(Context(key_weight=0.2))
    assert np.all(np.isfinite(scores))
    assert policy.quad[5] < 1e-3 < policy.quad[15]  # the sampled cut is known, the rest not
    assert policy.estimate[5] == pytest.approx(0.051, rel=1e-3)


def test_on_device_frames_teach_nothing(vgg: Partitioning) -> None:
    policy = MuLinUCB(vgg.cuts, [0.01] * vgg.num_cuts)
    before = (policy.r.copy(), policy.b.copy())
    policy.update(Action(vgg.last), Feedback(1.0, 0.0, 0.0, 0.0, 0))
    assert np.array_equal(policy.r, before[0]) and np.array_equal(policy.b, before[1])
