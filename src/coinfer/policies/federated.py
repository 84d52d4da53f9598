"""FedLinUCB-DW (CANS): devices sharing one edge learn its offloading delay together.

DESIGN §4 specifies it (the paper's text is not public): devices are grouped by type (device
class + model), each group keeps ridge statistics G_g = λI + Σ x xᵀ, B_g = Σ y x on the edge,
and every device selects with μLinUCB's rules on A = Ĝ + ΔG, θ̂ = A⁻¹(B̂ + Δb), where Ĝ, B̂ are
the group's statistics as last downloaded and ΔG, Δb its own offloaded frames since. A sync
(upload ΔG, Δb; the edge adds them; download the group's new G_g, B_g) happens when
det(Ĝ + ΔG) > (1 + growth)·det(Ĝ) — event-triggered, as asynchronous FedLinUCB — or, for the
ablation, every ``period`` frames. Before going online a device may add its offline experience,
weighted by w ∈ (0, 1], to its group (warm start, W).

Why it helps: the edge's part of the delay model is the same for every device of a type (same
model, same edge), so n devices learn it from n times the frames; grouping keeps devices whose
features mean different things (another model's cuts) out of each other's estimates.

A message carries the upper triangle of a d × d matrix and a d-vector as float64, plus a
16-byte header (group, device, kind): ``message_bytes(d)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from coinfer.policies.registry import FleetKnowledge
    from coinfer.policies.types import Policy

HEADER_BYTES = 16
LEARNERS = ("noncoop", "fedlinucb", "fedlinucb-d", "fedlinucb-dw", "fedlinucb-dw-periodic",
            "fedlinucb-w")  # fmt: skip
WARM_POLICIES = ("fedlinucb-dw", "fedlinucb-dw-periodic", "fedlinucb-w")


def message_bytes(dim: int) -> int:
    return 8 * (dim * (dim + 1) // 2 + dim) + HEADER_BYTES


@dataclass
class Traffic:
    """Messages between devices and the edge, and their bytes."""

    uploads: int = 0
    downloads: int = 0
    bytes: int = 0

    @property
    def messages(self) -> int:
        return self.uploads + self.downloads


class GroupStatistics:
    """The edge's statistics of one group: G = λI + Σ x xᵀ, B = Σ y x."""

    def __init__(self, dim: int, lam: float = 1.0) -> None:
        if not lam > 0:
            raise ValueError(f"lam must be positive, got {lam}")
        self.g = lam * np.eye(dim)
        self.b = np.zeros(dim)

    @property
    def dim(self) -> int:
        return len(self.b)

    def absorb(self, dg: np.ndarray, db: np.ndarray) -> None:
        self.g += dg
        self.b += db


class SyncRule(Protocol):
    def due(self, stats: FederatedStats) -> bool: ...


@dataclass(frozen=True)
class DeterminantSync:
    """Sync when the device's own frames have grown det(A) by more than (1 + growth) since
    the last download: rare once the group knows much, frequent while it knows little."""

    growth: float = 1.0

    def __post_init__(self) -> None:
        if not self.growth > 0:
            raise ValueError(f"the determinant growth must be positive, got {self.growth}")

    def due(self, stats: FederatedStats) -> bool:
        return stats.log_det_growth > math.log1p(self.growth)


@dataclass(frozen=True)
class PeriodicSync:
    """Sync every ``period`` frames of the device, whatever they taught."""

    period: int = 20

    def __post_init__(self) -> None:
        if self.period < 1:
            raise ValueError(f"the sync period must be at least 1 frame, got {self.period}")

    def due(self, stats: FederatedStats) -> bool:
        return stats.frames_since_sync >= self.period


class FederatedStats:
    """One device's view of its group's statistics: A = Ĝ + ΔG and b = B̂ + Δb, with A⁻¹ kept
    by Sherman–Morrison between syncs and log det A by the matrix determinant lemma."""

    def __init__(self, group: GroupStatistics, rule: SyncRule, traffic: Traffic) -> None:
        self.group = group
        self.rule = rule
        self.traffic = traffic
        self.size = message_bytes(group.dim)
        self.frames_since_sync = 0
        self._load()  # the prior λI needs no message: every device knows λ

    def download(self) -> None:
        self._load()
        self.traffic.downloads += 1
        self.traffic.bytes += self.size

    def _load(self) -> None:
        self.a = self.group.g.copy()
        self.b = self.group.b.copy()
        self.a_inv = np.asarray(np.linalg.inv(self.a), dtype=float)
        self.dg = np.zeros_like(self.a)
        self.db = np.zeros_like(self.b)
        self.log_det_growth = 0.0
        self.frames_since_sync = 0

    def upload(self, dg: np.ndarray, db: np.ndarray) -> None:
        self.group.absorb(dg, db)
        self.traffic.uploads += 1
        self.traffic.bytes += self.size

    def sync(self) -> None:
        """Upload what this device learned since the last sync (if anything), then download
        the group's statistics, which now hold every member's uploads."""
        if self.dg.any():
            self.upload(self.dg, self.db)
        self.download()

    def warm_start(self, xs: np.ndarray, ys: np.ndarray, weight: float) -> None:
        """Add offline experience (rows of ``xs``, delays ``ys``) to the group at ``weight``."""
        if not 0 < weight <= 1:
            raise ValueError(f"the warm-start weight must be in (0, 1], got {weight}")
        if len(xs):
            self.upload(weight * xs.T @ xs, weight * xs.T @ ys)

    @property
    def theta(self) -> np.ndarray:
        return np.asarray(self.a_inv @ self.b)

    def update(self, x: np.ndarray, y: float) -> None:
        ax = self.a_inv @ x
        quad = float(x @ ax)
        self.a += np.outer(x, x)
        self.b += y * x
        self.dg += np.outer(x, x)
        self.db += y * x
        self.a_inv -= np.outer(ax, ax) / (1.0 + quad)
        self.log_det_growth += math.log1p(quad)
        self._tick()

    def decay(self) -> None:
        """A frame on the device teaches nothing, but counts for periodic syncs."""
        self._tick()

    def _tick(self) -> None:
        self.frames_since_sync += 1
        if self.rule.due(self):
            self.sync()


def warm_start_rows(
    features: Sequence[np.ndarray], delays_s: Sequence[float], delay_unit_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Offline records as the learner's rows: feature vectors and delays in its unit."""
    if len(features) != len(delays_s):
        raise ValueError("need one delay per feature vector")
    xs = np.array(features, dtype=float).reshape(len(features), -1)
    return xs, np.asarray(delays_s, dtype=float) / delay_unit_s


@dataclass(frozen=True)
class Federation:
    """How devices cooperate: warm-start weight, determinant growth, periodic sync period,
    the prior λ and whether the learner has the link feature."""

    warm_weight: float = 0.5
    growth: float = 1.0
    period: int = 20
    lam: float = 1.0
    link_feature: bool = True


def _warm_rows(learner: Any, records: Sequence[Any]) -> tuple[list[np.ndarray], list[float]]:
    """Each record's features with the link feature at the rate its own upload achieved:
    offline, the device knows it exactly, so the fit can put the upload on the link feature and
    only the edge's time on the others (the lagged rate online is a noisy stand-in for it)."""
    xs = [learner.feature(r.cut, r.link_bps) for r in records]
    ys = [r.uplink_s + r.edge_s for r in records]
    return xs, ys


def build_fleet(name: str, fleet: FleetKnowledge) -> tuple[list[Policy], Traffic]:
    """One μLinUCB per device of ``fleet`` (no discount; the link feature unless the
    federation says otherwise), differing only in what they share (DESIGN §4): ``noncoop``
    nothing; ``fedlinucb`` one pool; ``-d`` a pool per device type; ``-w`` / ``-dw`` plus each
    device's offline experience (``fleet.experiences``) as a warm start; ``-periodic`` syncing
    every ``period`` frames instead of on determinant growth."""
    from coinfer.policies.bandits import MuLinUCB

    fed = fleet.federation or Federation()
    traffic = Traffic()
    m = len(fleet.devices)

    def learner(i: int, stats: FederatedStats | None = None) -> MuLinUCB:
        k = fleet.devices[i]
        return MuLinUCB(k.part.cuts, k.front_s, lam=fed.lam, link_feature=fed.link_feature,
                        delay_unit_s=k.delay_unit_s, stats=stats)  # fmt: skip

    if name == "noncoop":
        return [learner(i) for i in range(m)], traffic
    if name not in LEARNERS:
        raise ValueError(f"{name!r} is not a federated learner: choose from {', '.join(LEARNERS)}")
    warm = name in WARM_POLICIES
    experiences = fleet.experiences
    if warm and (experiences is None or len(experiences) != m):
        raise ValueError(f"{name} warm-starts from offline experience: give one per device ({m})")
    rule: SyncRule = (
        PeriodicSync(fed.period) if name.endswith("periodic") else DeterminantSync(fed.growth)
    )
    by_type = name not in ("fedlinucb", "fedlinucb-w")
    dim = MuLinUCB.dimension(fed.link_feature)
    keys = [t if by_type else "all" for t in fleet.types]
    groups = {key: GroupStatistics(dim, fed.lam) for key in keys}
    learners = [
        learner(i, FederatedStats(groups[key], rule, traffic)) for i, key in enumerate(keys)
    ]
    if warm:
        assert experiences is not None
        for one, records in zip(learners, experiences, strict=True):
            xs, ys = warm_start_rows(*_warm_rows(one, records), one.unit)
            stats = one.stats
            assert isinstance(stats, FederatedStats)
            stats.warm_start(xs, ys, fed.warm_weight)
        for one in learners:  # every device starts from its group's pooled experience
            stats = one.stats
            assert isinstance(stats, FederatedStats)
            stats.download()
    return list(learners), traffic
