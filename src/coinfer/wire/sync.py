"""SYNC on the wire (CANS through the edge): a federated learner's statistics, to and from its
group (the group lives on the edge: ``edge.groups``; the device's side: ``device.member``).

A device of a federated policy (``fedlinucb-dw`` ...) keeps its group's statistics on the edge
server it offloads to (``coinfer serve --federation``). A SYNC carries everything the member has
learned so far (its totals, not a delta: a re-sent SYNC counts once), and the reply the group's
sums as the server combines them for this member (its own and the others', robustly):

    SYNC (device → edge), header only:
      group   str, 1-64 characters of [A-Za-z0-9._:/-]     (who shares: a device type)
      dim     int, 7 or 8                                   (the ANS features, + the link's)
      member  int, 1..2⁶³-1                                 (this learner, chosen at random)
      seq     int, 1..2⁶³-1                                 (grows with every SYNC it sends)
      dg      bin, float64 little-endian, G's upper triangle row by row: dim·(dim+1)/2 values
      db      bin, float64 little-endian, b: dim values
      count   int, 0..MAX_COUNT                             (online records in the totals)
      eg, eb, ecount                                        (offline experience, the same way)
      token   str                                           (when the server has one)
    reply RESULT: group, dim, dg, db, count, eg, eb, ecount (the group's sums for this
    member), syncs (SYNCs the group took). Both counts 0 in a first SYNC: a download.

Every field is checked on both sides (docs/security.md): sizes exact, values finite, G positive
semi-definite with non-negative entries and b non-negative (every learner's features and delays
are non-negative, so anything else is an impossible measurement), no records all zero, and
the sums within what ``count`` real records can make: features scaled to [0, 1] (the link
feature, an upload time, and the delay at most ``MAX_UNITS`` delay units). The prior λI is not
on the wire: every device adds its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from coinfer.wire.messages import token_of
from coinfer.wire.protocol import ErrorCode, Kind, ProtocolError, request_id_of

DIMS = (7, 8)  # features per record: the 7 ANS features, and the link feature after them
MAX_DIM = max(DIMS)
MAX_COUNT = 10_000_000  # records in a member's totals
MAX_UNITS = 600.0  # the largest delay or upload time a record holds (60 s in 0.1 s units)
MAX_ABS = 1e15  # any statistic beyond this is no measurement (delays in units, features ≤ 1)
MAX_ID = 2**63 - 1
GROUP_NAME = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
PSD_TOLERANCE = 1e-9  # relative: of each entry's diagonal scale


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


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_dim(value: Any) -> int:
    if not _integer(value) or value not in DIMS:
        raise ValueError(
            f"dim must be 7 (the ANS features) or 8 (with the link feature), got {value!r}"
        )
    return value


def check_id(value: Any, name: str) -> int:
    if not _integer(value) or not 1 <= value <= MAX_ID:
        raise ValueError(f"{name} must be an integer in 1..2^63-1, got {value!r}")
    return value


def check_count(value: Any) -> int:
    if not _integer(value) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"count must be an integer in 0..{MAX_COUNT}, got {value!r}")
    return value


def check_group_name(value: Any) -> str:
    if not isinstance(value, str) or not GROUP_NAME.fullmatch(value):
        raise ValueError(
            f"a group name is 1-64 characters of letters, digits and ._:/- (got {value!r})"
        )
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
    diagonal = np.diag(g)
    if np.any(g**2 > np.outer(diagonal, diagonal) * (1 + PSD_TOLERANCE)):  # Cauchy–Schwarz
        raise ValueError(f"{names[0]} is not a sum of x xᵀ (an entry beyond its diagonal's)")
    norm = np.sqrt(np.where(diagonal > 0, diagonal, 1.0))  # each feature on the same scale
    if float(np.linalg.eigvalsh(g / np.outer(norm, norm))[0]) < -PSD_TOLERANCE:
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

    def plus(self, other: Sums) -> Sums:
        """Both sums, as new ones (``add`` adds in place)."""
        return Sums(self.g + other.g, self.b + other.b, self.count + other.count)

    def scaled(self, count: int) -> Sums:
        """These sums weighed as ``count`` records."""
        weight = count / self.count if self.count else 0.0
        return Sums(self.g * weight, self.b * weight, count)

    def ridge(self, lam: float) -> np.ndarray:
        """θ = (λI + G)⁻¹ b, the delay model these records make (LinAlgError only for a G
        that is no sum of x xᵀ, which the checks refuse)."""
        return np.asarray(np.linalg.solve(lam * np.eye(len(self.b)) + self.g, self.b))

    def wire(self, fields: tuple[str, str, str]) -> dict[str, Any]:
        g, b, count = fields
        return {g: triangle(self.g), b: self.b.astype("<f8").tobytes(), count: self.count}


ONLINE = ("dg", "db", "count")  # the wire fields of online frames' sums, both ways
EXPERIENCE = ("eg", "eb", "ecount")  # and of offline experience


def read_sums(header: Mapping[str, Any], dim: int, fields: tuple[str, str, str]) -> Sums:
    """Sums from their wire fields, ValueError naming the first impossible one."""
    g_name, b_name, count_name = fields
    try:
        count = check_count(header.get(count_name))
    except ValueError as exc:
        raise ValueError(f"{count_name}: {exc}") from None
    g, b = read_statistics(dim, header.get(g_name), header.get(b_name), (g_name, b_name))
    if count == 0 and (g.any() or b.any()):
        raise ValueError(f"{g_name}/{b_name}: sums of no records must be all zero")
    check_range(g, b, count, (g_name, b_name))
    return Sums(g, b, count)


def check_range(g: np.ndarray, b: np.ndarray, count: int, names: tuple[str, str]) -> None:
    """Sums that ``count`` real records cannot make, refused: a record's features are in
    [0, 1] (the link feature and the delay at most MAX_UNITS), so Σ x_i² ≤ n·max_i² and, by
    Cauchy–Schwarz, Σ y x_i ≤ max_y·√(n·Σ x_i²)."""
    dim = len(b)
    top = np.ones(dim)
    if dim == MAX_DIM:  # the link feature: an upload time in delay units
        top[-1] = MAX_UNITS
    slack = 1.0 + 1e-9
    diagonal = np.diag(g)
    if np.any(diagonal > count * top**2 * slack + 1e-9):
        raise ValueError(f"{names[0]}: beyond what {count} records of features in range can sum to")
    if np.any(b > MAX_UNITS * np.sqrt(count * diagonal) * slack + 1e-9):
        raise ValueError(
            f"{names[1]}: beyond what {count} records of delays up to {MAX_UNITS:g} units "
            "can sum to"
        )


def _sums(header: Mapping[str, Any], dim: int) -> tuple[Sums, Sums]:
    return read_sums(header, dim, ONLINE), read_sums(header, dim, EXPERIENCE)


@dataclass(frozen=True)
class Sync:
    """Device → edge: everything a federated learner (``member``) has learned so far, its
    ``seq``-th SYNC (both counts 0: a download), every field checked (BAD_HEADER naming the
    first impossible one)."""

    group: str
    dim: int
    online: Sums
    experience: Sums
    member: int
    seq: int
    id: int | None = 0
    token: str | None = None
    kind: ClassVar[Kind] = Kind.SYNC

    def header(self) -> dict[str, Any]:
        header = {
            "id": self.id,
            "group": self.group,
            "dim": self.dim,
            "member": self.member,
            "seq": self.seq,
            **self.online.wire(ONLINE),
            **self.experience.wire(EXPERIENCE),
        }
        if self.token is not None:
            header["token"] = self.token
        return header

    @classmethod
    def parse(cls, header: Mapping[str, Any]) -> Sync:
        try:
            group = check_group_name(header.get("group"))
            dim = check_dim(header.get("dim"))
            member = check_id(header.get("member"), "member")
            seq = check_id(header.get("seq"), "seq")
            online, experience = _sums(header, dim)
        except ValueError as exc:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"SYNC: {exc}") from None
        rid, token = request_id_of(header), token_of(header)
        return cls(group, dim, online, experience, member, seq, rid, token)


@dataclass(frozen=True)
class SyncReply:
    """Edge → device: the group's sums for this member (its own, and the others' as the
    server weighs them), and how many SYNCs the group took."""

    group: str
    dim: int
    online: Sums
    experience: Sums
    syncs: int
    id: int | None = 0
    kind: ClassVar[Kind] = Kind.RESULT

    def header(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "dim": self.dim,
            **self.online.wire(ONLINE),
            **self.experience.wire(EXPERIENCE),
            "syncs": self.syncs,
        }

    @classmethod
    def parse(cls, header: Mapping[str, Any], group: str, dim: int) -> SyncReply:
        """The reply for ``group`` of ``dim`` features (ValueError: the edge may be anyone)."""
        if header.get("group") != group:
            raise ValueError(f"the reply is for group {header.get('group')!r}, not {group!r}")
        if check_dim(header.get("dim")) != dim:
            raise ValueError(f"the group has {header.get('dim')} features, this device {dim}")
        online, experience = _sums(header, dim)
        syncs = header.get("syncs", 0)
        return cls(
            group,
            dim,
            online,
            experience,
            syncs if isinstance(syncs, int) else 0,
            request_id_of(header),
        )
