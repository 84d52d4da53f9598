"""CANS live: how a federated learner (``fedlinucb-dw`` ...) joins its group on the edge before
its first frame — the group's name (devices of one type share one), its offline experience (the
warm start) and how it federates — and what its Knowledge then holds."""

from __future__ import annotations

from coinfer.assembly import DeviceSetup
from coinfer.device.endpoint import Endpoint
from coinfer.device.member import RemoteGroup
from coinfer.errors import BadValueError
from coinfer.graph.types import ANS_FEATURES
from coinfer.policies.fedlinucb import LEARNERS, Federation
from coinfer.systems.base import LivePrep, LiveRequest


def prepare(setup: DeviceSetup, policy: str, edge: Endpoint, request: LiveRequest) -> LivePrep:
    """The remote group a federated learner syncs with (``noncoop`` has none), and its
    experience and federation in what it knows."""
    if policy not in LEARNERS:
        raise BadValueError(f"{policy} is not a federated learner ({', '.join(LEARNERS)})")
    federation = Federation(link_feature=request.link_feature)
    prep = LivePrep({"federation": federation})
    if request.experience is not None:
        request.experience.check_fits(setup.model.name, setup.model.part.last)
        prep.fields["experience"] = request.experience.records
    if request.group is None or policy == "noncoop":
        return prep
    dim = len(ANS_FEATURES) + int(federation.link_feature)
    prep.group = RemoteGroup(request.group, dim, federation.lam, edge)
    prep.fields["group"] = prep.group
    return prep
