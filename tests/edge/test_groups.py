"""The edge's federation state against one hostile token holder, in process (the wire's side
runs on real sockets in tests/device/test_federation.py)."""

from __future__ import annotations

import numpy as np
import pytest

from coinfer.edge.groups import MAX_MEMBERS, RECORD_SLACK, GroupStore
from coinfer.wire.protocol import ErrorCode, ProtocolError
from coinfer.wire.sync import MAX_COUNT, Sums, Sync, read_statistics, triangle

DIM = 8
X = np.linspace(0.1, 1.0, DIM)


def _records(n: int, y: float = 3.0) -> Sums:
    return Sums(n * np.outer(X, X), n * y * X, n)


def _sync(member: int, online: Sums, seq: int = 1, group: str = "g") -> Sync:
    return Sync(group, DIM, online, Sums.zero(DIM), member, seq)


def _backed(store: GroupStore, source: str, n: int) -> None:
    for _ in range(n):
        store.answered(source)


def test_a_member_hears_its_own_claims_though_the_others_hear_what_is_backed() -> None:
    store = GroupStore()
    _backed(store, "a", 20)
    reply = store.sync(_sync(1, _records(520)), "a")  # an edge restarted under a busy device
    assert reply.online.count == 520  # its own, as it sent them: its check passes
    other = store.sync(_sync(2, Sums.zero(DIM)), "b")
    assert other.online.count == 20 + RECORD_SLACK  # what the server can vouch for


def test_a_refused_sync_changes_nothing_and_a_resent_one_counts_once() -> None:
    store = GroupStore()
    _backed(store, "a", 5)
    store.sync(_sync(1, _records(5)), "a")
    with pytest.raises(ProtocolError) as refused:
        store.sync(_sync(1, _records(4), seq=2), "a")
    assert refused.value.code is ErrorCode.BAD_HEADER
    again = store.sync(_sync(1, _records(5)), "a")
    assert again.online.count == 5 and again.syncs == 1
    assert store.describe()["g"]["count"] == 5


def test_a_large_group_answers_within_what_a_device_takes() -> None:
    store = GroupStore()
    for member in (1, 2, 3):
        _backed(store, f"s{member}", 4_000_000)
        reply = store.sync(_sync(member, _records(4_000_000)), f"s{member}")
    assert reply.online.count <= MAX_COUNT
    assert np.all(np.diag(reply.online.g) <= reply.online.count * np.array([1] * 7 + [600**2]))


def test_members_that_shared_nothing_make_room() -> None:
    store = GroupStore()
    for member in range(1, MAX_MEMBERS + 1):  # downloads only: no record backed
        store.sync(_sync(member, Sums.zero(DIM)), "attacker")
    _backed(store, "device", 1)
    reply = store.sync(_sync(10_000, _records(1)), "device")
    assert reply.online.count >= 1 and store.describe()["g"]["members"] == MAX_MEMBERS


def test_a_tolerance_stretched_by_one_large_feature_is_no_way_past_the_check() -> None:
    """The review's case: eg[0,1] = 1 with eg[7,7] = 3.6e9 was within a tolerance scaled by
    the largest diagonal, and made λI + G singular for the robust reply."""
    g = np.zeros((DIM, DIM))
    g[0, 1] = g[1, 0] = 1.0
    g[7, 7] = 3.6e9
    with pytest.raises(ValueError, match="not a sum of x"):
        read_statistics(DIM, triangle(g), np.zeros(DIM).astype("<f8").tobytes())
