"""The edge's side of the federation (``coinfer serve --federation``): every group's members and
their statistics, bounded, and combined so that no one member can poison or deny its group.

The CANS paper trusts its devices; an edge cannot. So:

- a group is named *and* sized (``name``, ``dim``): claiming a name with another dimension
  makes another group and denies nobody;
- each member's totals are kept apart and replaced by its next SYNC (never added), so a re-sent
  SYNC counts once and a refused one changes nothing;
- a member's online records may grow by no more than the INFERs this server answered to its
  address since (``answered``), plus a little slack, and its experience no more than
  MAX_EXPERIENCE: beyond, its totals are taken at that many records' weight;
- the reply to a member is its own sums (as it sent them) plus the others' (as the server
  vouches for them), each weighed down to the lower-median member's record count and, when
  three or more members have records, by how far its ridge estimate lies from theirs
  (``_weights``);
- idle groups and members expire; when ``max_groups`` groups (or MAX_MEMBERS members) are in
  use, one with no record an INFER backs makes room first.

What a token holder can still do is in docs/security.md. The messages and their checks:
``wire.sync``.
"""

from __future__ import annotations

import collections
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from coinfer.wire.protocol import ErrorCode, ProtocolError
from coinfer.wire.sync import MAX_COUNT, Sums, Sync, SyncReply

DEFAULT_MAX_GROUPS = 64
MAX_MEMBERS = 64  # per group
RECORD_SLACK = 8  # online records a member may claim beyond the INFERs its address was answered
MAX_EXPERIENCE = 10_000  # offline records per member, for life
IDLE_S = 3600.0  # a group or member not heard from this long is forgotten
MAX_SOURCES = 4096  # addresses whose answered INFERs are counted
LAM = 1.0  # the ridge prior of the estimates compared (the devices' own is not on the wire)
OUTLIER_SPREAD = 3.0  # an estimate this many median distances from the median's is down-weighed
MIN_SPREAD = 1.0  # delay units: disagreement below this is noise, whatever the median distance


@dataclass
class _Member:
    online: Sums  # its totals at the weight the server vouches for: what the others hear
    experience: Sums
    claimed: tuple[Sums, Sums] | None = None  # its totals as it sent them: what it hears back
    seq: int = 0
    heard: float = 0.0
    backed: int = 0  # online records matched by INFERs answered (the rest came of the slack)

    def own(self) -> tuple[Sums, Sums]:
        return self.claimed or (self.online, self.experience)


@dataclass
class _Group:
    dim: int
    members: dict[int, _Member] = field(default_factory=dict)
    syncs: int = 0
    heard: float = 0.0

    @property
    def junk(self) -> bool:
        """No record an INFER backs: names claimed, nothing shared."""
        return not any(m.backed for m in self.members.values())


class GroupStore:
    """The edge's groups, bounded in number, members and records."""

    def __init__(
        self, max_groups: int = DEFAULT_MAX_GROUPS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_groups < 1:
            raise ValueError(f"--max-groups must be at least 1, got {max_groups}")
        self.max_groups = max_groups
        self.clock = clock
        self.groups: dict[tuple[str, int], _Group] = {}
        self.credits: collections.OrderedDict[str, int] = collections.OrderedDict()

    def answered(self, source: str) -> None:
        """An INFER from ``source`` was answered: a member there may learn one more record."""
        self.credits[source] = self.credits.pop(source, 0) + 1
        while len(self.credits) > MAX_SOURCES:
            self.credits.popitem(last=False)

    def sync(self, sync: Sync, source: str) -> SyncReply:
        """Take a member's new totals (at most what it can have learned) and answer with its
        group's sums as this member should see them. A refused SYNC changes nothing."""
        now = self.clock()
        key = (sync.group, sync.dim)
        group = self.groups.get(key)
        member = group.members.get(sync.member) if group is not None else None
        if member is None or sync.seq > member.seq:  # else taken already (re-sent, or late)
            base = member or _Member(Sums.zero(sync.dim), Sums.zero(sync.dim))
            online, experience, spent = self._bounded(base, sync, source)
            if group is None:
                group = self._new_group(key, sync.dim, now)
            if member is None:
                member = self._join(group, sync, now)
            if spent:
                self.credits[source] -= spent
            member.backed += spent
            member.online, member.experience, member.seq = online, experience, sync.seq
            member.claimed = (sync.online, sync.experience)
            group.syncs += 1
        assert group is not None and member is not None
        member.heard = group.heard = now
        mine_online, mine_experience = member.own()
        return SyncReply(
            sync.group,
            sync.dim,
            _combined(group, member, mine_online, lambda m: m.online),
            _combined(group, member, mine_experience, lambda m: m.experience),
            group.syncs,
            sync.id,
        )

    def _bounded(self, member: _Member, sync: Sync, source: str) -> tuple[Sums, Sums, int]:
        """The member's new totals at the weight the server can vouch for: online records
        grown by no more than the INFERs answered to its address (and the slack), experience
        no more than MAX_EXPERIENCE; and the INFER credits that spends."""
        online, experience = sync.online, sync.experience
        before_online, before_experience = member.own()
        if online.count < before_online.count or experience.count < before_experience.count:
            raise ProtocolError(ErrorCode.BAD_HEADER, "SYNC: a member's record counts go down")
        earned = self.credits.get(source, 0)
        slack = max(0, RECORD_SLACK - (member.online.count - member.backed))
        allowed = member.online.count + earned + slack
        if online.count > allowed:  # claimed beyond the frames it offloaded here
            online = online.scaled(allowed)
        if experience.count > MAX_EXPERIENCE:
            experience = experience.scaled(MAX_EXPERIENCE)
        return online, experience, min(earned, online.count - member.online.count)

    def _new_group(self, key: tuple[str, int], dim: int, now: float) -> _Group:
        if len(self.groups) >= self.max_groups:
            self._make_room(now)
        if len(self.groups) >= self.max_groups:
            raise ProtocolError(
                ErrorCode.BUSY,
                f"the server keeps {self.max_groups} groups, all in use: join one of them",
            )
        made = self.groups[key] = _Group(dim, heard=now)
        return made

    def _make_room(self, now: float) -> None:
        """Forget the idle groups; if none is, the oldest junk group."""
        for key in [k for k, g in self.groups.items() if now - g.heard > IDLE_S]:
            del self.groups[key]
        if len(self.groups) >= self.max_groups:
            junk = [k for k, g in self.groups.items() if g.junk]
            if junk:
                del self.groups[min(junk, key=lambda k: self.groups[k].heard)]

    def _join(self, group: _Group, sync: Sync, now: float) -> _Member:
        if len(group.members) >= MAX_MEMBERS:
            for key in [k for k, m in group.members.items() if now - m.heard > IDLE_S]:
                del group.members[key]
        unbacked = [k for k, m in group.members.items() if not m.backed]
        if len(group.members) >= MAX_MEMBERS and unbacked:  # shared nothing: the first to go
            del group.members[min(unbacked, key=lambda k: group.members[k].heard)]
        if len(group.members) >= MAX_MEMBERS:
            raise ProtocolError(
                ErrorCode.BUSY,
                f"group {sync.group!r} has {MAX_MEMBERS} members, all active: try again later",
            )
        member = group.members[sync.member] = _Member(Sums.zero(sync.dim), Sums.zero(sync.dim))
        return member

    def describe(self) -> dict[str, dict[str, int]]:
        """Each group by name (``name/dim`` for a name already shown with another dim)."""
        shown: dict[str, dict[str, int]] = {}
        for (name, dim), g in self.groups.items():
            shown[name if name not in shown else f"{name}/{dim}"] = {
                "dim": dim,
                "members": len(g.members),
                "count": sum(m.online.count for m in g.members.values()),
                "experience": sum(m.experience.count for m in g.members.values()),
                "syncs": g.syncs,
            }
        return shown


def _combined(group: _Group, me: _Member, own: Sums, pick: Callable[[_Member], Sums]) -> Sums:
    """``me``'s own sums (``own``, as it sent them) in full, plus every other member's at its
    weight, all of them at most MAX_COUNT records (what a device takes)."""
    others = [pick(m) for m in group.members.values() if m is not me and pick(m).count > 0]
    g, b, count = np.zeros_like(own.g), np.zeros_like(own.b), 0.0
    for sums, weight in zip(others, _weights(pick(me), others), strict=True):
        if weight > 0:
            g += weight * sums.g
            b += weight * sums.b
            count += weight * sums.count
    room = MAX_COUNT - own.count
    if count > room:  # the others', weighed down together (the sums stay in range)
        g, b, count = g * (room / count), b * (room / count), float(room)
    return Sums(own.g + g, own.b + b, own.count + min(room, math.ceil(count - 1e-9)))


def _weights(own: Sums, others: list[Sums]) -> list[float]:
    """Each other member's weight: at most the lower-median member's record count (one member
    cannot outweigh the rest by claiming more), and, with three or more members holding
    records, down by the square of how many spreads its estimate lies beyond the rest's."""
    everyone = ([own] if own.count else []) + others
    if not others:
        return []
    cap = statistics.median_low(s.count for s in everyone)
    weights = [min(1.0, cap / s.count) for s in others]
    if len(everyone) < 3:
        return weights
    try:  # (every G is positive semi-definite, so λI + G is not singular: this is a guard)
        thetas = np.array([s.ridge(LAM) for s in everyone])
    except np.linalg.LinAlgError:
        return weights
    centre = np.median(thetas, axis=0)
    design = sum(s.g for s in everyone) / sum(s.count for s in everyone)  # mean x xᵀ
    gaps = [math.sqrt(max(0.0, float(d @ design @ d))) for d in thetas - centre]
    spread = max(MIN_SPREAD, OUTLIER_SPREAD * statistics.median(gaps))
    offset = len(everyone) - len(others)
    for i, gap in enumerate(gaps[offset:]):
        if gap > spread:
            weights[i] *= (spread / gap) ** 2
    return weights
