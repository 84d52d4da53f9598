"""Federation through the edge server (CANS over the wire): SYNC messages and group statistics.

A device of a federated policy (``fedlinucb-dw`` ...) keeps its group's statistics on the edge
server it offloads to (``coinfer serve --federation``). A SYNC carries what the device learned
since its last one, and the reply the group's sums, which hold every member's uploads:

    SYNC (device → edge), header only:
      group   str, 1-64 characters of [A-Za-z0-9._:/-]     (who shares: a device type)
      dim     int, 1..MAX_DIM                               (features per record)
      dg      bin, float64 little-endian, ΔG's upper triangle row by row: dim·(dim+1)/2 values
      db      bin, float64 little-endian, Δb: dim values
      count   int, 0..MAX_COUNT                             (online records in the delta)
      eg, eb, ecount                                        (offline experience, the same way)
      token   str                                           (when the server has one)
    reply RESULT: group, dim, dg, db, count, eg, eb, ecount (the same fields, now the group's
    sums), syncs (SYNCs that made them). Both counts 0 in a SYNC: a download.

Every field is checked on both sides (docs/security.md): sizes exact, values finite, ΔG and the
group's sums positive semi-definite with non-negative entries and Δb non-negative (every
learner's features and delays are non-negative, so anything else is an impossible
measurement), a delta of no records all zero. The server keeps at most ``max_groups`` groups of
at most MAX_DIM features (a few KiB each): a SYNC for a group beyond them is refused BUSY.
The prior λI is not on the wire: every device adds its own.
"""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from coinfer.policies.federated import GroupView
from coinfer.runtime.protocol import (
    ErrorCode,
    Kind,
    Limits,
    ProtocolError,
    pack,
    request_once,
)

MAX_DIM = 32  # features per record: the 7 ANS features and the link feature need 8
MAX_COUNT = 10_000_000  # records in one delta
MAX_ABS = 1e15  # any statistic beyond this is no measurement (delays in units, features ≤ 1)
DEFAULT_MAX_GROUPS = 64
GROUP_NAME = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
PSD_TOLERANCE = 1e-9  # of the matrix's largest diagonal entry
SYNC_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5.0  # a failed SYNC is tried again no sooner than this


def triangle(matrix: np.ndarray) -> bytes:
    """A symmetric matrix's upper triangle, row by row, as float64 little-endian bytes."""
    rows, cols = np.triu_indices(matrix.shape[0])
    return np.ascontiguousarray(matrix[rows, cols], dtype="<f8").tobytes()


def _vector(raw: Any, size: int, name: str) -> np.ndarray:
    if not isinstance(raw, (bytes, bytearray)):
        raise ValueError(f"{name} must be bytes (float64 little-endian)")
    if len(raw) != 8 * size:
        raise ValueError(f"{name} has {len(raw)} bytes, {8 * size} expected")
    values = np.frombuffer(bytes(raw), dtype="<f8").astype(float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} holds a value that is not finite")
    if np.any(np.abs(values) > MAX_ABS):
        raise ValueError(f"{name} holds a value beyond {MAX_ABS:g}")
    return values


def check_dim(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DIM:
        raise ValueError(f"dim must be an integer in 1..{MAX_DIM}, got {value!r}")
    return value


def check_count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"count must be an integer in 0..{MAX_COUNT}, got {value!r}")
    return value


def check_group_name(value: Any) -> str:
    if not isinstance(value, str) or not GROUP_NAME.fullmatch(value):
        raise ValueError("a group name is 1-64 characters of letters, digits and ._:/- "
                         f"(got {value!r})")  # fmt: skip
    return value


def read_statistics(
    dim: int, raw_g: Any, raw_b: Any, names: tuple[str, str] = ("dg", "db")
) -> tuple[np.ndarray, np.ndarray]:
    """ΔG (symmetric) and Δb from their wire form, or ValueError naming what is impossible."""
    upper = _vector(raw_g, dim * (dim + 1) // 2, names[0])
    b = _vector(raw_b, dim, names[1])
    g = np.zeros((dim, dim))
    g[np.triu_indices(dim)] = upper
    g = g + np.triu(g, 1).T
    if np.any(g < 0) or np.any(b < 0):
        raise ValueError("statistics of non-negative features and delays cannot be negative")
    scale = max(1.0, float(np.max(np.diag(g))))
    if float(np.linalg.eigvalsh(g)[0]) < -PSD_TOLERANCE * scale:
        raise ValueError(f"{names[0]} is not a sum of x xᵀ (not positive semi-definite)")
    return g, b


@dataclass
class Sums:
    """Σ x xᵀ, Σ y x and their record count: online frames, or offline experience."""

    g: np.ndarray
    b: np.ndarray
    count: int = 0

    @classmethod
    def zero(cls, dim: int) -> Sums:
        return cls(np.zeros((dim, dim)), np.zeros(dim))

    def add(self, other: Sums) -> None:
        self.g += other.g
        self.b += other.b
        self.count = min(MAX_COUNT * 1000, self.count + other.count)

    def wire(self, fields: tuple[str, str, str]) -> dict[str, Any]:
        g, b, count = fields
        return {g: triangle(self.g), b: self.b.astype("<f8").tobytes(), count: self.count}


ONLINE = ("dg", "db", "count")  # the wire fields of online frames' sums, both ways
EXPERIENCE = ("eg", "eb", "ecount")  # and of offline experience


def read_sums(header: dict[str, Any], dim: int, fields: tuple[str, str, str]) -> Sums:
    """Sums from their wire fields, ValueError naming the first impossible one."""
    g_name, b_name, count_name = fields
    try:
        count = check_count(header.get(count_name))
    except ValueError as exc:
        raise ValueError(f"{count_name}: {exc}") from None
    g, b = read_statistics(dim, header.get(g_name), header.get(b_name), (g_name, b_name))
    if count == 0 and (g.any() or b.any()):
        raise ValueError(f"{g_name}/{b_name}: a delta of no records must be all zero")
    return Sums(g, b, count)


@dataclass
class SyncDelta:
    group: str
    dim: int
    online: Sums
    experience: Sums


def parse_sync(header: dict[str, Any]) -> SyncDelta:
    """A SYNC request's delta, every field checked (ProtocolError BAD_HEADER otherwise)."""
    try:
        group = check_group_name(header.get("group"))
        dim = check_dim(header.get("dim"))
        online = read_sums(header, dim, ONLINE)
        experience = read_sums(header, dim, EXPERIENCE)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_HEADER, f"SYNC: {exc}") from None
    return SyncDelta(group, dim, online, experience)


@dataclass
class _GroupSums:
    dim: int
    online: Sums
    experience: Sums
    syncs: int = 0


class GroupStore:
    """The edge's statistics of every group, bounded in number and size."""

    def __init__(self, max_groups: int = DEFAULT_MAX_GROUPS) -> None:
        if max_groups < 1:
            raise ValueError(f"--max-groups must be at least 1, got {max_groups}")
        self.max_groups = max_groups
        self.groups: dict[str, _GroupSums] = {}

    def sync(self, delta: SyncDelta) -> dict[str, Any]:
        """Add a delta to its group (made on first use) and answer with the group's sums."""
        found = self.groups.get(delta.group)
        if found is None:
            if len(self.groups) >= self.max_groups:
                raise ProtocolError(ErrorCode.BUSY, f"the server keeps {self.max_groups} "
                                    "groups, all in use: join one of them")  # fmt: skip
            found = _GroupSums(delta.dim, Sums.zero(delta.dim), Sums.zero(delta.dim))
            self.groups[delta.group] = found
        elif found.dim != delta.dim:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"SYNC: group {delta.group!r} has "
                                f"{found.dim} features, not {delta.dim}")  # fmt: skip
        found.online.add(delta.online)
        found.experience.add(delta.experience)
        found.syncs += 1
        return {"group": delta.group, "dim": found.dim, **found.online.wire(ONLINE),
                **found.experience.wire(EXPERIENCE), "syncs": found.syncs}  # fmt: skip

    def describe(self) -> dict[str, dict[str, int]]:
        return {name: {"dim": g.dim, "count": g.online.count,
                       "experience": g.experience.count, "syncs": g.syncs}
                for name, g in self.groups.items()}  # fmt: skip


@dataclass
class WireTraffic:
    """SYNC round trips as they really went: messages both ways and their bytes."""

    messages: int = 0
    bytes: int = 0
    failures: int = 0
    last_error: str | None = None


class RemoteGroup:
    """A group whose statistics live on the edge server (``policies.federated.Group``).

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
        address: tuple[str, int] | None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = SYNC_TIMEOUT_S,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self.name = check_group_name(name)
        self._dim = check_dim(dim)
        self.lam = lam
        self.address = address
        self.token, self.tls = token, tls
        self.timeout_s, self.retry_after_s = timeout_s, retry_after_s
        self.online, self.experience = Sums.zero(dim), Sums.zero(dim)  # the group's, as heard
        self.out_online, self.out_experience = Sums.zero(dim), Sums.zero(dim)  # queued
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
        return GroupView(self.lam * np.eye(self._dim) + self.online.g, self.online.b.copy(),
                         self.online.count, self.experience.g.copy(), self.experience.b.copy(),
                         self.experience.count)  # fmt: skip

    def push(self, dg: np.ndarray, db: np.ndarray, count: int, experience: bool = False) -> bool:
        (self.out_experience if experience else self.out_online).add(Sums(dg, db, count))
        return False

    @property
    def due(self) -> bool:
        return (not self.joined or self.out_count > 0) and time.monotonic() >= self._retry_at

    async def flush(self) -> bool:
        """One SYNC if anything is queued (or the device has not joined yet); whether the
        group's statistics came back."""
        if not self.due or self.address is None:
            return False
        header: dict[str, Any] = {"id": 0, "group": self.name, "dim": self._dim,
                                  **self.out_online.wire(ONLINE),
                                  **self.out_experience.wire(EXPERIENCE)}  # fmt: skip
        if self.token is not None:
            header["token"] = self.token
        try:
            reply = await self._exchange(pack(Kind.SYNC, header))
            online, experience = self._check(reply)
        except Exception as exc:  # a failed SYNC: the delta stays queued
            self.wire.failures += 1
            self.wire.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self._retry_at = time.monotonic() + self.retry_after_s
            return False
        self.pushed += self.out_count
        self.out_online, self.out_experience = Sums.zero(self._dim), Sums.zero(self._dim)
        self.online, self.experience = online, experience
        self.joined = True
        if self.on_statistics is not None:
            self.on_statistics(self.snapshot())
        return True

    async def _exchange(self, message: bytes) -> dict[str, Any]:
        assert self.address is not None
        msg = await request_once(self.address, message, Limits(max_payload_bytes=0), self.tls,
                                 self.timeout_s)  # fmt: skip
        self.wire.messages += 2
        self.wire.bytes += len(message) + len(pack(msg.kind, msg.header))
        if msg.kind is Kind.ERROR:
            raise ProtocolError.from_reply(msg.header)
        if msg.kind is not Kind.RESULT:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"a SYNC answered by {msg.kind.name}")
        return msg.header

    def _check(self, reply: dict[str, Any]) -> tuple[Sums, Sums]:
        """The group's sums from a reply, or ValueError: the edge may be anyone."""
        if reply.get("group") != self.name:
            raise ValueError(f"the reply is for group {reply.get('group')!r}, not {self.name!r}")
        if check_dim(reply.get("dim")) != self._dim:
            raise ValueError(f"the group has {reply.get('dim')} features, this device {self._dim}")
        online = read_sums(reply, self._dim, ONLINE)
        experience = read_sums(reply, self._dim, EXPERIENCE)
        mine = (self.pushed + self.out_count, online.count + experience.count)
        if mine[1] < mine[0]:
            raise ValueError(f"the group holds {mine[1]} records, fewer than this device's "
                             f"{mine[0]}")  # fmt: skip
        return online, experience
