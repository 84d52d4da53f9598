"""FedLinUCB's statistics: what a group holds, when devices sync, what the messages cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinfer.policies.bandits import RidgeStats
from coinfer.policies.fedlinucb import (
    DeterminantSync,
    FederatedStats,
    GroupStatistics,
    PeriodicSync,
    Traffic,
    message_bytes,
    warm_start_rows,
)


def _samples(n: int, d: int = 8, seed: int = 0) -> list[tuple[np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2, d)
    return [(x, float(x @ theta + rng.normal(0, 0.1))) for x in rng.uniform(0, 1, (n, d))]


def test_one_device_syncing_every_frame_is_plain_ridge() -> None:
    ridge = RidgeStats(8)
    traffic = Traffic()
    fed = FederatedStats(GroupStatistics(8), PeriodicSync(1), traffic)
    for x, y in _samples(50):
        ridge.update(x, y)
        fed.update(x, y)
        assert fed.theta == pytest.approx(ridge.theta, rel=1e-9, abs=1e-9)
    assert traffic.uploads == traffic.downloads == 50
    assert traffic.bytes == 100 * message_bytes(8)


def test_a_device_sees_the_others_after_its_next_sync() -> None:
    group, traffic = GroupStatistics(8), Traffic()
    a = FederatedStats(group, PeriodicSync(5), traffic)
    b = FederatedStats(group, PeriodicSync(5), traffic)
    samples = _samples(10)
    for x, y in samples[:5]:
        a.update(x, y)  # a syncs at its 5th frame: the group now holds a's five samples
    assert group.g == pytest.approx(np.eye(8) + sum(np.outer(x, x) for x, _ in samples[:5]))
    for x, y in samples[5:9]:
        b.update(x, y)
    assert b.a == pytest.approx(np.eye(8) + sum(np.outer(x, x) for x, _ in samples[5:9]))
    b.update(*samples[9])  # b's sync: upload its five, download the group's ten
    both = np.eye(8) + sum(np.outer(x, x) for x, _ in samples)
    assert b.a == pytest.approx(both) and group.g == pytest.approx(both)
    assert b.a_inv @ b.a == pytest.approx(np.eye(8), abs=1e-9)
    assert a.a != pytest.approx(both)  # a has not synced since


def test_determinant_rule_syncs_rarely_and_less_with_a_larger_growth() -> None:
    counts = {}
    for growth in (0.5, 1.0, 4.0):
        traffic = Traffic()
        fed = FederatedStats(GroupStatistics(8), DeterminantSync(growth), traffic)
        for x, y in _samples(2000):
            fed.update(x, y)
        counts[growth] = traffic.uploads
        # each sync means det(A) grew by 1 + growth: log det(A_T) bounds the number of syncs
        log_det = float(np.linalg.slogdet(fed.group.snapshot().g)[1])
        assert traffic.uploads <= log_det / math.log1p(growth) + 1
    assert counts[0.5] > counts[1.0] > counts[4.0] > 0
    assert counts[1.0] < 100  # against 2,000 for syncing every frame


def test_device_frames_count_for_periodic_sync_only() -> None:
    periodic, triggered = Traffic(), Traffic()
    p = FederatedStats(GroupStatistics(8), PeriodicSync(10), periodic)
    t = FederatedStats(GroupStatistics(8), DeterminantSync(1.0), triggered)
    for _ in range(30):
        p.decay()
        t.decay()
    assert (periodic.uploads, periodic.downloads) == (0, 3)  # nothing new to upload
    assert triggered.messages == 0


def test_warm_start_is_a_prior_on_estimate_and_confidence_that_data_outweighs() -> None:
    group, traffic = GroupStatistics(8), Traffic()
    fed = FederatedStats(group, PeriodicSync(1000), traffic, warm_weight=0.5)
    assert fed.prior_weight == 0.0  # no experience: plain ridge statistics
    samples = _samples(30)
    xs, ys = warm_start_rows([x for x, _ in samples], [y * 0.1 for _, y in samples], 0.1)
    assert ys == pytest.approx([y for _, y in samples])  # delays into the learner's unit
    fed.warm_start(xs, ys)
    view = group.snapshot()
    assert view.eg == pytest.approx(xs.T @ xs) and view.eb == pytest.approx(xs.T @ ys)
    assert view.experience_count == 30 and view.count == 0
    assert view.g == pytest.approx(np.eye(8))  # the online statistics hold no experience
    assert traffic.uploads == 1
    fed.download()
    assert fed.prior_weight == pytest.approx(0.5)
    ridge = np.linalg.solve(np.eye(8) / 0.5 + xs.T @ xs, xs.T @ ys)
    assert fed.theta == pytest.approx(ridge)  # ridge on the experience, prior λ / w
    prior = np.eye(8) + 0.5 * xs.T @ xs
    assert fed.a_inv @ prior == pytest.approx(np.eye(8), abs=1e-9)  # the bonus is as sure
    online = _samples(90)[30:]  # frames of its own, from another θ: they take over the fit
    for x, y in online:
        fed.update(x + 0.5, 3.0 * y)
    own = sum(np.outer(x + 0.5, x + 0.5) for x, _ in online)
    own_b = sum(3.0 * y * (x + 0.5) for x, y in online)
    assert fed.a == pytest.approx(np.eye(8) + own)  # what the sync rule and the group see
    assert fed.a_inv @ (prior + own) == pytest.approx(np.eye(8), abs=1e-9)
    both = np.linalg.solve(prior + own, own_b + 0.5 * xs.T @ ys)
    assert fed.theta == pytest.approx(both)
    today = np.linalg.solve(np.eye(8) + own, own_b)
    before = np.linalg.solve(prior, 0.5 * xs.T @ ys)
    assert np.linalg.norm(fed.theta - today) < 0.5 * np.linalg.norm(before - today)
    # the determinant rule counts the group's own frames, never the prior
    log_det = float(np.linalg.slogdet(np.eye(8) + own)[1])
    assert fed.log_det_growth == pytest.approx(log_det)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        FederatedStats(GroupStatistics(8), DeterminantSync(), Traffic(), warm_weight=1.5)
    with pytest.raises(ValueError, match="growth must be positive"):
        DeterminantSync(0.0)
    with pytest.raises(ValueError, match="at least 1 frame"):
        PeriodicSync(0)
