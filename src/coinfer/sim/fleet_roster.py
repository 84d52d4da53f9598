"""The fleet's policies by name: one learner per device, cooperating or not.

Every learner is μLinUCB with the link feature (DESIGN §4; the 8th feature of
``coinfer experiment ans``) and no discount, so the policies differ only in what they share:

- ``noncoop``: each device alone (no messages).
- ``fedlinucb``: every device in one pool, event-triggered sync.
- ``fedlinucb-d``: pooled by device type (class + model).
- ``fedlinucb-dw``: by type, plus each device's offline experience as a warm start.
- ``fedlinucb-dw-periodic``: as ``fedlinucb-dw`` but syncing every ``period`` frames.
- ``fedlinucb-w``: one pool plus warm start (warm start without grouping).
- references: ``oracle`` (each frame's best cut given the current load), ``device-only``,
  ``edge-only``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from coinfer.policies.bandits import MuLinUCB
from coinfer.policies.federated import (
    DeterminantSync,
    FederatedStats,
    GroupStatistics,
    PeriodicSync,
    SyncRule,
    Traffic,
    warm_start_rows,
)
from coinfer.policies.static import FixedCut, Oracle
from coinfer.policies.types import Policy
from coinfer.sim.experience import Experience
from coinfer.sim.fleet import FleetSim

LEARNERS = ("noncoop", "fedlinucb", "fedlinucb-d", "fedlinucb-dw", "fedlinucb-dw-periodic",
            "fedlinucb-w")  # fmt: skip
REFERENCES = ("oracle", "device-only", "edge-only")
WARM_POLICIES = ("fedlinucb-dw", "fedlinucb-dw-periodic", "fedlinucb-w")
FLEET_POLICIES = (*REFERENCES, *LEARNERS)


@dataclass(frozen=True)
class Federation:
    """How devices cooperate: warm-start weight, determinant growth, periodic sync period."""

    warm_weight: float = 0.5
    growth: float = 1.0
    period: int = 20
    lam: float = 1.0
    link_feature: bool = True


def _learner(
    sim: FleetSim,
    i: int,
    fed: Federation,
    stats: FederatedStats | None = None,
) -> MuLinUCB:
    model = sim.cost_model(i)
    return MuLinUCB(sim.devices[i].kind.part.cuts, model.device_s, lam=fed.lam,
                    link_feature=fed.link_feature, stats=stats)  # fmt: skip


def _warm_rows(learner: MuLinUCB, experience: Experience) -> tuple[list, list[float]]:
    """Each record's features with the link feature at the rate its own upload achieved:
    offline, the device knows it exactly, so the fit can put the upload on the link feature and
    only the edge's time on the others (the lagged rate online is a noisy stand-in for it)."""
    xs = [learner.feature(r.cut, r.link_bps) for r in experience.records]
    ys = [r.uplink_s + r.edge_s for r in experience.records]
    return xs, ys


def make_fleet_policies(
    name: str,
    sim: FleetSim,
    experiences: Sequence[Experience] | None = None,
    federation: Federation | None = None,
) -> tuple[list[Policy], Traffic]:
    """One policy per device of ``sim`` and the traffic they will count; ``experiences``
    (one per device) are needed by the warm-started policies."""
    fed = federation or Federation()
    traffic = Traffic()
    m = len(sim.devices)
    if name == "oracle":
        return [Oracle(partial(sim.truth, i)) for i in range(m)], traffic
    if name == "device-only":
        return [FixedCut(d.kind.last) for d in sim.devices], traffic
    if name == "edge-only":
        return [FixedCut(0) for _ in sim.devices], traffic
    if name == "noncoop":
        return [_learner(sim, i, fed) for i in range(m)], traffic
    if name not in LEARNERS:
        raise ValueError(f"unknown fleet policy {name!r}: choose from {', '.join(FLEET_POLICIES)}")
    warm = name in WARM_POLICIES
    if warm and (experiences is None or len(experiences) != m):
        raise ValueError(f"{name} warm-starts from offline experience: give one per device ({m})")
    rule: SyncRule = (
        PeriodicSync(fed.period) if name.endswith("periodic") else DeterminantSync(fed.growth)
    )
    by_type = name != "fedlinucb" and name != "fedlinucb-w"
    dim = MuLinUCB.dimension(fed.link_feature)
    keys = [dev.kind.name if by_type else "all" for dev in sim.devices]
    groups = {key: GroupStatistics(dim, fed.lam) for key in keys}
    learners = []
    for i, key in enumerate(keys):
        learners.append(_learner(sim, i, fed, FederatedStats(groups[key], rule, traffic)))
    if warm:
        assert experiences is not None
        for i, (learner, experience) in enumerate(zip(learners, experiences, strict=True)):
            experience.check_fits(sim.devices[i].kind.model, sim.devices[i].kind.last)
            xs, ys = warm_start_rows(*_warm_rows(learner, experience), learner.unit)
            stats = learner.stats
            assert isinstance(stats, FederatedStats)
            stats.warm_start(xs, ys, fed.warm_weight)
        for learner in learners:  # every device starts from its group's pooled experience
            stats = learner.stats
            assert isinstance(stats, FederatedStats)
            stats.download()
    return list(learners), traffic
