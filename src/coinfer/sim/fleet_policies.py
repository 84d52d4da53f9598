"""A fleet's policies, from the one registry (``coinfer.policies.registry``): what each device
of a ``FleetSim`` knows, turned into one policy per device.

Every learner is μLinUCB (with the link feature unless the federation says otherwise) and no
discount, so the fleet policies differ only in what they share (``policies.fedlinucb``);
references: ``oracle`` (each frame's best cut given the current load), ``device-only``,
``edge-only``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from coinfer.policies import registry
from coinfer.policies.experience import Experience
from coinfer.policies.fedlinucb import LEARNERS, Federation, Traffic
from coinfer.policies.types import Policy
from coinfer.sim.fleet import FleetSim

REFERENCES = ("oracle", "device-only", "edge-only")
FLEET_POLICIES = (*REFERENCES, *LEARNERS)


def fleet_knowledge(
    sim: FleetSim,
    experiences: Sequence[Experience] | None = None,
    federation: Federation | None = None,
) -> registry.FleetKnowledge:
    """What each device of ``sim`` knows: its type's cuts and compute times, its link at the
    start, and (a simulator's privilege, for the Oracle) its current truth."""
    devices = []
    for i, dev in enumerate(sim.devices):
        model = sim.cost_model(i)
        devices.append(
            registry.Knowledge.starting(
                dev.kind.part,
                model.device_s,
                dev.kind.device,
                dev.kind.edge,
                dev.link,
                "fleet",
                seed=sim.seed * 1_000 + i,
                truth=partial(sim.truth, i),
            )
        )
    records = None
    if experiences is not None:
        for dev, experience in zip(sim.devices, experiences, strict=False):
            experience.check_fits(dev.kind.model, dev.kind.last)
        records = [e.records for e in experiences]
    types = [d.kind.name for d in sim.devices]
    return registry.FleetKnowledge(devices, types, records, federation or Federation())


def make_fleet_policies(
    name: str,
    sim: FleetSim,
    experiences: Sequence[Experience] | None = None,
    federation: Federation | None = None,
) -> tuple[list[Policy], Traffic]:
    """One policy per device of ``sim`` and the traffic they will count; ``experiences``
    (one per device) are needed by the warm-started policies."""
    return registry.create_fleet(name, fleet_knowledge(sim, experiences, federation))
