"""A federation member's link to its group on the edge (CANS live): ``RemoteGroup`` queues what
the device's learner learned, sends its totals in one SYNC before a frame, checks the reply as
strictly as the edge checks a request (``wire.sync``) and hands the group's statistics to the
learner, weighed against the device's own (``trusted``): the edge, or another member, may lie."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from coinfer.device.endpoint import Endpoint
from coinfer.device.streams import REPLY_WITHOUT_PAYLOAD, request_once
from coinfer.policies.fedlinucb import GroupView
from coinfer.wire.messages import encode, raise_for_error
from coinfer.wire.protocol import ErrorCode, Kind, ProtocolError
from coinfer.wire.sync import Sums, Sync, SyncReply, check_dim, check_group_name

SYNC_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5.0  # a failed SYNC is tried again no sooner than this
OWN_PLUS = 8  # the others' records count for at most TRUST × (own records + OWN_PLUS)...
TRUST = 4.0
CHECK_FROM = 1  # ...and once the device has this many records, by how well they fit its own
AGREEMENT = 0.5  # a gap in prediction up to this share of its own (or MIN_GAP units) is noise
MIN_GAP = 2.0


@dataclass
class WireTraffic:
    """SYNC round trips as they really went: messages both ways and their bytes."""

    messages: int = 0
    bytes: int = 0
    failures: int = 0
    last_error: str | None = None


class RemoteGroup:
    """A group whose statistics live on the edge server (``policies.fedlinucb.Group``).

    ``push`` queues a delta; ``flush`` — awaited by the live environment before a frame —
    sends what is queued (or, on joining, asks for the group's statistics) in one SYNC, checks
    the reply as strictly as the server checks a request, and hands the group's statistics to
    the device's learner (``on_statistics``). A failed SYNC keeps the delta for the next try,
    no sooner than ``retry_after_s``: a dead edge costs a timeout now and then, never a frame.
    """

    def __init__(
        self,
        name: str,
        dim: int,
        lam: float,
        endpoint: Endpoint | None,
        timeout_s: float = SYNC_TIMEOUT_S,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self.name = check_group_name(name)
        self._dim = check_dim(dim)
        self.lam = lam
        self.endpoint = endpoint
        self.timeout_s, self.retry_after_s = timeout_s, retry_after_s
        self.online, self.experience = Sums.zero(dim), Sums.zero(dim)  # the group's, as heard
        self.out_online, self.out_experience = Sums.zero(dim), Sums.zero(dim)  # queued
        self.own_online, self.own_experience = Sums.zero(dim), Sums.zero(dim)  # taken
        self.member = 1 + secrets.randbelow(2**63 - 1)  # this learner, to the group
        self.seq = 0
        self.pushed = 0  # records this device has had the group take
        self.joined = False
        self.wire = WireTraffic()
        self.on_statistics: Any = None  # GroupView → None, set by the learner's statistics
        self._retry_at = -float("inf")

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def out_count(self) -> int:
        return self.out_online.count + self.out_experience.count

    @property
    def group_count(self) -> int:
        return self.online.count + self.experience.count

    def snapshot(self) -> GroupView:
        online = trusted(self.own_online, self.online, self.lam)
        experience = trusted(self.own_experience, self.experience, self.lam)
        return GroupView(
            self.lam * np.eye(self._dim) + online.g,
            online.b,
            online.count,
            experience.g,
            experience.b,
            experience.count,
        )

    def push(self, dg: np.ndarray, db: np.ndarray, count: int, experience: bool = False) -> bool:
        (self.out_experience if experience else self.out_online).add(Sums(dg, db, count))
        return False

    def summary(self) -> dict[str, Any]:
        """What this device exchanged with its group, for a run's summary."""
        return {
            "group": self.name,
            "messages": self.wire.messages,
            "bytes": self.wire.bytes,
            "failed_syncs": self.wire.failures,
            "last_error": self.wire.last_error,
            "group_records": self.group_count,
            "records_sent": self.pushed,
        }

    @property
    def due(self) -> bool:
        return (not self.joined or self.out_count > 0) and time.monotonic() >= self._retry_at

    async def flush(self) -> bool:
        """One SYNC if anything is queued (or the device has not joined yet); whether the
        group's statistics came back."""
        if not self.due or self.endpoint is None:
            return False
        online = self.own_online.plus(self.out_online)
        experience = self.own_experience.plus(self.out_experience)
        self.seq += 1
        sync = Sync(
            self.name,
            self._dim,
            online,
            experience,
            self.member,
            self.seq,
            token=self.endpoint.token,
        )
        try:
            heard_online, heard_experience = self._check(await self._exchange(encode(sync)))
        except Exception as exc:  # a failed SYNC: the delta stays queued
            self.wire.failures += 1
            self.wire.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self._retry_at = time.monotonic() + self.retry_after_s
            return False
        self.pushed += self.out_count
        self.own_online, self.own_experience = sync.online, sync.experience
        self.out_online, self.out_experience = Sums.zero(self._dim), Sums.zero(self._dim)
        self.online, self.experience = heard_online, heard_experience
        self.joined = True
        if self.on_statistics is not None:
            self.on_statistics(self.snapshot())
        return True

    async def _exchange(self, message: bytes) -> SyncReply:
        assert self.endpoint is not None
        msg = await request_once(self.endpoint, message, REPLY_WITHOUT_PAYLOAD, self.timeout_s)
        self.wire.messages += 2
        self.wire.bytes += len(message) + msg.size
        raise_for_error(msg.kind, msg.header)
        if msg.kind is not Kind.RESULT:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"a SYNC answered by {msg.kind.name}")
        return SyncReply.parse(msg.header, self.name, self._dim)

    def _check(self, reply: SyncReply) -> tuple[Sums, Sums]:
        """The group's sums, if they hold at least what this device sent (ValueError: the
        edge may be anyone)."""
        online, experience = reply.online, reply.experience
        mine = (self.pushed + self.out_count, online.count + experience.count)
        if mine[1] < mine[0]:
            raise ValueError(
                f"the group holds {mine[1]} records, fewer than this device's {mine[0]}"
            )
        return online, experience


def trusted(own: Sums, heard: Sums, lam: float) -> Sums:
    """The group's sums as this device uses them: its own in full, the others' (the rest of
    what the edge sent) at most TRUST × (own records + OWN_PLUS) records' worth, and, once it
    has CHECK_FROM records, down by the square of how far their estimate's predictions on its
    own records lie beyond AGREEMENT of its own estimate's (one lying member, or edge, then
    costs the device little more than its own exploration)."""
    others_count = heard.count - own.count
    if others_count <= 0:
        return Sums(own.g.copy(), own.b.copy(), own.count)
    others = Sums(  # (clipped: what rounding left below 0)
        np.clip(heard.g - own.g, 0.0, None), np.clip(heard.b - own.b, 0.0, None), others_count
    )
    weight = min(1.0, TRUST * (own.count + OWN_PLUS) / others_count)
    if own.count >= CHECK_FROM:
        try:
            mine, theirs = own.ridge(lam), others.ridge(lam)
        except np.linalg.LinAlgError:  # nothing a real group sends: heard as nothing
            return Sums(own.g.copy(), own.b.copy(), own.count)
        design = own.g / own.count
        squared = float((theirs - mine) @ design @ (theirs - mine))
        gap = math.sqrt(max(0.0, squared)) if math.isfinite(squared) else math.inf
        allowed = max(MIN_GAP, AGREEMENT * math.sqrt(max(0.0, float(mine @ design @ mine))))
        if gap > allowed:
            weight *= (allowed / gap) ** 2  # (an infinite gap: 0)
    return Sums(
        own.g + weight * others.g,
        own.b + weight * others.b,
        own.count + math.ceil(weight * others_count - 1e-9),
    )
