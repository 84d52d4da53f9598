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

from coinfer.errors import BadValueError
from coinfer.graph.types import ANS_FEATURES

if TYPE_CHECKING:
    from coinfer.policies.bandits import Statistics, TunedMuLinUCB
    from coinfer.policies.registry import FleetKnowledge, Knowledge
    from coinfer.policies.types import Policy

HEADER_BYTES = 16
LEARNERS = (
    "noncoop",
    "fedlinucb",
    "fedlinucb-d",
    "fedlinucb-dw",
    "fedlinucb-dw-periodic",
    "fedlinucb-w",
)
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


@dataclass
class GroupView:
    """A group's statistics as one side knows them: the online frames' G = λI + Σ x xᵀ and
    B = Σ y x with their record count, and the members' offline experience apart (E_G, E_B,
    its record count), which a device takes as its prior (``FederatedStats``)."""

    g: np.ndarray
    b: np.ndarray
    count: int
    eg: np.ndarray
    eb: np.ndarray
    experience_count: int

    @classmethod
    def prior(cls, dim: int, lam: float) -> GroupView:
        return cls(lam * np.eye(dim), np.zeros(dim), 0, np.zeros((dim, dim)), np.zeros(dim), 0)

    def copy(self) -> GroupView:
        return GroupView(
            self.g.copy(),
            self.b.copy(),
            self.count,
            self.eg.copy(),
            self.eb.copy(),
            self.experience_count,
        )

    def add(self, dg: np.ndarray, db: np.ndarray, count: int, experience: bool) -> None:
        if experience:
            self.eg = self.eg + dg
            self.eb = self.eb + db
            self.experience_count += count
        else:
            self.g = self.g + dg
            self.b = self.b + db
            self.count += count


class Group(Protocol):
    """Where a group's statistics live: in the simulator's process (``GroupStatistics``) or
    on the edge server (``runtime.federation.RemoteGroup``)."""

    @property
    def dim(self) -> int: ...

    def snapshot(self) -> GroupView:
        """The group's statistics as this side knows them now."""
        ...

    def push(self, dg: np.ndarray, db: np.ndarray, count: int, experience: bool = False) -> bool:
        """Hand over a device's ΔG, Δb (``count`` records; ``experience``: offline records,
        the warm start): True when the group has taken them already (``snapshot`` then
        includes them), False when they travel and the new statistics come back later
        (``FederatedStats.rebase``)."""
        ...


class GroupStatistics:
    """One group's statistics in this process (and how many syncs made them)."""

    def __init__(self, dim: int, lam: float = 1.0) -> None:
        if not lam > 0:
            raise BadValueError(f"lam must be positive, got {lam}")
        self.view = GroupView.prior(dim, lam)
        self.syncs = 0

    @property
    def dim(self) -> int:
        return len(self.view.b)

    @property
    def g(self) -> np.ndarray:
        return self.view.g

    def snapshot(self) -> GroupView:
        return self.view.copy()

    def push(self, dg: np.ndarray, db: np.ndarray, count: int, experience: bool = False) -> bool:
        self.view.add(dg, db, count, experience)
        self.syncs += 1
        return True


class SyncRule(Protocol):
    def due(self, stats: FederatedStats) -> bool: ...


@dataclass(frozen=True)
class DeterminantSync:
    """Sync when the device's own frames have grown det(A) by more than (1 + growth) since
    the last download: rare once the group knows much, frequent while it knows little."""

    growth: float = 1.0

    def __post_init__(self) -> None:
        if not self.growth > 0:
            raise BadValueError(f"the determinant growth must be positive, got {self.growth}")

    def due(self, stats: FederatedStats) -> bool:
        return stats.log_det_growth > math.log1p(self.growth)


@dataclass(frozen=True)
class PeriodicSync:
    """Sync every ``period`` frames of the device, whatever they taught."""

    period: int = 20

    def __post_init__(self) -> None:
        if self.period < 1:
            raise BadValueError(f"the sync period must be at least 1 frame, got {self.period}")

    def due(self, stats: FederatedStats) -> bool:
        return stats.frames_since_sync >= self.period


class FederatedStats:
    """One device's view of its group's statistics: A = Ĝ + ΔG and b = B̂ + Δb, where Ĝ, B̂ are
    the group's online frames as last heard and ΔG, Δb this device's frames since its last
    upload; the log-det growth of A (the sync rule) by the determinant lemma between syncs.

    The members' offline experience Ê (the warm start) is a prior of weight w on both the
    estimate and the confidence: the learner scores with M = A + w·Ê_G, θ̂ = M⁻¹(b + w·Ê_B),
    M⁻¹ kept by Sherman–Morrison. Where the experience has records (the input cut and the
    exits) the learner is as sure as they make it and does not pay to explore what they
    settle; where today's frames arrive they outweigh the prior as any data outweighs a prior
    (after ~w·n_e frames in that direction); and forced sampling still offloads every F-th
    frame, so a pessimistic experience cannot hold a device on the device (docs/cans.md, the
    trap case). Measured against a prior that fades with n and stays out of the bonus (the
    first design): never worse in any prototype seed (the faded one was +0.6% in its worst),
    −3% against −1% on the 3G fleet of 10.

    With a remote group the new statistics arrive after the upload: meanwhile Ĝ holds the
    device's own upload (it never forgets what it learned), and ``rebase`` puts the group's
    reply under the frames the device has seen since."""

    def __init__(
        self, group: Group, rule: SyncRule, traffic: Traffic, warm_weight: float = 0.5
    ) -> None:
        if not 0 < warm_weight <= 1:
            raise BadValueError(f"the warm-start weight must be in (0, 1], got {warm_weight}")
        self.group = group
        self.rule = rule
        self.traffic = traffic
        self.warm_weight = warm_weight
        self.size = message_bytes(group.dim)
        self.frames_since_sync = 0
        self.count = 0  # records in ΔG
        self.view = group.snapshot()  # the prior needs no message: λ is known
        self.dg = np.zeros_like(self.view.g)
        self.db = np.zeros_like(self.view.b)
        self._combine()
        if hasattr(group, "on_statistics"):  # a remote group: its replies come back here
            group.on_statistics = self.rebase

    @property
    def prior_weight(self) -> float:
        """ρ: the experience's weight (w when the group has any, else 0)."""
        return self.warm_weight if self.view.experience_count else 0.0

    def _combine(self) -> None:
        self.a = self.view.g + self.dg
        self.b = self.view.b + self.db
        rho = self.prior_weight
        if rho > 0:
            self.a_inv = np.asarray(np.linalg.inv(self.a + rho * self.view.eg), dtype=float)
            self.prior_b = rho * self.view.eb
        else:
            self.a_inv = np.asarray(np.linalg.inv(self.a), dtype=float)
            self.prior_b = np.zeros_like(self.b)
        self.log_det_growth = float(np.linalg.slogdet(self.a)[1]) - float(
            np.linalg.slogdet(self.view.g)[1]
        )
        self._theta: np.ndarray | None = None

    def download(self) -> None:
        """The group's statistics now (a local group), under what this device has not sent."""
        self.rebase(self.group.snapshot())

    def rebase(self, view: GroupView) -> None:
        """The group's statistics as they came back (holding this device's uploads)."""
        self.view = view.copy()
        self.traffic.downloads += 1
        self.traffic.bytes += self.size
        self._combine()

    def upload(self, dg: np.ndarray, db: np.ndarray, count: int, experience: bool = False) -> bool:
        self.traffic.uploads += 1
        self.traffic.bytes += self.size
        taken = self.group.push(dg, db, count, experience)
        if not taken:  # on its way to the edge: this side counts it in until the reply
            self.view.add(dg, db, count, experience)
        return taken

    def sync(self) -> None:
        """Upload what this device learned since the last sync (if anything), then take the
        group's statistics, which now hold every member's uploads."""
        self.frames_since_sync = 0
        taken = self.upload(self.dg, self.db, self.count) if self.dg.any() else True
        self.dg = np.zeros_like(self.view.g)
        self.db = np.zeros_like(self.view.b)
        self.count = 0
        if taken:
            self.download()
        else:
            self._combine()

    def warm_start(self, xs: np.ndarray, ys: np.ndarray) -> None:
        """Add offline experience (rows of ``xs``, delays ``ys``) to the group's experience."""
        if len(xs) and not self.upload(xs.T @ xs, xs.T @ ys, len(xs), experience=True):
            self._combine()

    @property
    def theta(self) -> np.ndarray:
        if self._theta is None:
            self._theta = self.a_inv @ (self.b + self.prior_b)
        return np.asarray(self._theta)

    def update(self, x: np.ndarray, y: float) -> None:
        mx = self.a_inv @ x
        quad = float(x @ mx)
        # the sync rule follows the group's own frames, log det A (M⁻¹ is A⁻¹ with no prior)
        online = float(x @ np.linalg.solve(self.a, x)) if self.prior_weight else quad
        self.log_det_growth += math.log1p(online)
        self.a_inv -= np.outer(mx, mx) / (1.0 + quad)
        self.a += np.outer(x, x)
        self.b += y * x
        self.dg += np.outer(x, x)
        self.db += y * x
        self.count += 1
        self._theta = None
        self._tick()

    def decay(self) -> None:
        """A frame on the device teaches nothing about the edge, but counts for periodic syncs."""
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
        raise BadValueError("need one delay per feature vector")
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


def sync_rule(name: str, fed: Federation) -> SyncRule:
    return PeriodicSync(fed.period) if name.endswith("periodic") else DeterminantSync(fed.growth)


def pools_by_type(name: str) -> bool:
    """Whether ``name`` keeps a pool per device type (D) or one for everyone."""
    return name not in ("fedlinucb", "fedlinucb-w")


def check_learner(name: str) -> None:
    if name not in LEARNERS:
        known = ", ".join(LEARNERS)
        raise BadValueError(f"{name!r} is not a federated learner: choose from {known}")


def learner(k: Knowledge, fed: Federation, stats: Statistics | None = None) -> TunedMuLinUCB:
    """The μLinUCB every fleet policy builds on (no discount, λ and the link feature as the
    federation says), on ``stats`` when it shares them."""
    from coinfer.policies.bandits import TunedMuLinUCB

    return TunedMuLinUCB(
        k.part.cuts,
        k.front_s,
        lam=fed.lam,
        link_feature=fed.link_feature,
        delay_unit_s=k.delay_unit_s,
        stats=stats,
    )


def member(
    name: str,
    k: Knowledge,
    group: Group,
    traffic: Traffic,
    fed: Federation,
    records: Sequence[Any] | None = None,
) -> TunedMuLinUCB:
    """One device of a federated policy on ``group`` (in this process or on the edge); a
    warm-started one first adds its offline ``records`` to the group (without downloading:
    in a fleet every device downloads once all have added theirs)."""
    check_learner(name)
    stats = FederatedStats(group, sync_rule(name, fed), traffic, fed.warm_weight)
    one = learner(k, fed, stats)
    if name in WARM_POLICIES:
        if records is None:
            raise BadValueError(
                f"{name} warm-starts from offline experience: give the device's "
                "records (an experience file)"
            )
        stats.warm_start(*warm_start_rows(*_warm_rows(one, records), one.unit))
    return one


def build_fleet(name: str, fleet: FleetKnowledge) -> tuple[list[Policy], Traffic]:
    """One μLinUCB per device of ``fleet`` (no discount; the link feature unless the
    federation says otherwise), differing only in what they share (DESIGN §4): ``noncoop``
    nothing; ``fedlinucb`` one pool; ``-d`` a pool per device type; ``-w`` / ``-dw`` plus each
    device's offline experience (``fleet.experiences``) as a warm start; ``-periodic`` syncing
    every ``period`` frames instead of on determinant growth."""
    fed = fleet.federation or Federation()
    traffic = Traffic()
    m = len(fleet.devices)
    if name == "noncoop":
        return [learner(k, fed) for k in fleet.devices], traffic
    check_learner(name)
    experiences = fleet.experiences
    if name in WARM_POLICIES and (experiences is None or len(experiences) != m):
        raise BadValueError(
            f"{name} warm-starts from offline experience: give one per device ({m})"
        )
    dim = len(ANS_FEATURES) + int(fed.link_feature)
    keys = [t if pools_by_type(name) else "all" for t in fleet.types]
    groups = {key: GroupStatistics(dim, fed.lam) for key in keys}
    learners = [
        member(name, k, groups[key], traffic, fed, experiences[i] if experiences else None)
        for i, (k, key) in enumerate(zip(fleet.devices, keys, strict=True))
    ]
    if name in WARM_POLICIES:  # every device starts from its group's pooled experience
        for one in learners:
            stats = one.stats
            assert isinstance(stats, FederatedStats)
            stats.download()
    return list(learners), traffic
