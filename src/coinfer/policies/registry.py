"""Every policy once, by name: ``create(name, knowledge)`` builds it from what a device knows.

A policy module registers its factories with ``@register`` (as the zoo registers models); the
simulator, the fleet, the live runtime, the demo and every experiment build from here, so a
name means the same policy — the same tuning — in every world. ``Knowledge`` is what a device
knows when it starts: its cuts and front times, the latency models of both sides, the link at
the start; a simulator may add the truth (for the Oracle), a multi-exit model its exits, a
stage-wise world its stage costs and channel law.

Worlds: ``sim`` (one simulated device), ``live`` (the runtime, over real sockets), ``fleet``
(many simulated devices sharing one edge). A policy that cannot run in a world says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coinfer.defaults import DELAY_UNIT_FRACTION, DISCOUNT, MIN_DELAY_UNIT_S
from coinfer.errors import BadValueError
from coinfer.graph.types import CutTable
from coinfer.latency.devices import DeviceModel
from coinfer.latency.link import Link
from coinfer.policies.types import Policy

if TYPE_CHECKING:
    from coinfer.policies.edgent import ExitPath
    from coinfer.policies.fedlinucb import Traffic
    from coinfer.policies.stopping.policy import StageProblem

WORLDS = ("sim", "live", "fleet")
KINDS = ("cut", "exit+cut", "stage")  # what a policy decides: a cut; an exit and a cut; stop or go


def delay_unit(front_s: Sequence[float]) -> float:
    """The learners' delay unit, one rule for every world (``coinfer.defaults``): a fraction of
    the device's own whole-model time."""
    return max(float(front_s[-1]) / DELAY_UNIT_FRACTION, MIN_DELAY_UNIT_S)


@dataclass(frozen=True)
class Knowledge:
    """What a device knows when it starts (and, in a simulator, the truth)."""

    part: CutTable
    front_s: Sequence[float]  # its own compute time of every cut's front
    device: DeviceModel
    edge: DeviceModel
    link_bps: float  # the uplink rate at the start
    rtt_s: float = 0.0
    world: str = "sim"
    discount: float = DISCOUNT  # γ of the discounted learners
    seed: int = 0  # a randomised policy's draws (μLinUCB's prior)
    truth: Callable[[], Any] | None = None  # each cut's true delay now (simulators only)
    exits: Sequence[ExitPath] = ()  # a multi-exit model's exits (Edgent)
    latency_req_s: float | None = None  # Edgent's latency requirement
    link_history_bps: Sequence[float] = ()  # throughputs seen before (Edgent's states)
    stages: StageProblem | None = None  # stage costs and channel law (optimal stopping)
    # a federated learner (CANS) live: its group on the edge, its offline records, how it
    # federates (``policies.federated``: Group, experience records, Federation)
    group: Any = None
    experience: Sequence[Any] | None = None
    federation: Any = None

    @classmethod
    def starting(
        cls,
        part: CutTable,
        front_s: Sequence[float],
        device: DeviceModel,
        edge: DeviceModel,
        link: Link,
        world: str,
        **fields: Any,
    ) -> Knowledge:
        """What a device knows at the start of a run over ``link`` in ``world`` (the one
        place every world builds it)."""
        return cls(
            part, front_s, device, edge, link.uplink.at(0.0), link.rtt_s, world=world, **fields
        )

    @property
    def delay_unit_s(self) -> float:
        return delay_unit(self.front_s)

    def need_truth(self, name: str) -> Callable[[], Any]:
        if self.truth is None:
            raise BadValueError(f"{name} needs every cut's true delay, which only a simulator has")
        return self.truth


@dataclass(frozen=True)
class FleetKnowledge:
    """What a fleet's devices know: each one's Knowledge, its type (who may share statistics)
    and its offline experience (records with cut, link_bps, uplink_s, edge_s), and how they
    federate (``policies.federated.Federation``)."""

    devices: Sequence[Knowledge]
    types: Sequence[str]
    experiences: Sequence[Sequence[Any]] | None = None
    federation: Any = None


Factory = Callable[[Knowledge], Policy]
FleetFactory = Callable[[FleetKnowledge], "tuple[list[Policy], Traffic]"]


@dataclass(frozen=True)
class PolicyEntry:
    name: str
    summary: str
    kind: str
    worlds: tuple[str, ...]
    build: Factory | None
    build_fleet: FleetFactory | None = None
    why_not: dict[str, str] = field(default_factory=dict)
    watches_link: bool = False  # it reads the bandwidth monitor (Context.extra)

    def reason(self, world: str) -> str:
        """Why this policy cannot run in ``world``."""
        commands = {"sim": "coinfer simulate", "live": "coinfer run", "fleet": "coinfer fleet"}
        elsewhere = " or ".join(commands[w] for w in self.worlds if w in commands)
        if world == "fleet" and world not in self.why_not:
            return (
                f"it has no form for the fleet simulator, whose devices share one edge's queue "
                f"(only the policies marked fleet have one): run it with {elsewhere}"
            )
        return self.why_not.get(world) or (
            f"{self.name} is not built for {commands.get(world, world)}: run it with {elsewhere}"
        )


_REGISTRY: dict[str, PolicyEntry] = {}
_FIXED = re.compile(r"fixed-(\d+)")


def register(
    name: str,
    *,
    summary: str,
    kind: str = "cut",
    worlds: Sequence[str] = ("sim", "live"),
    why_not: dict[str, str] | None = None,
    fleet: FleetFactory | None = None,
    watches_link: bool = False,
) -> Callable[[Factory], Factory]:
    """Register a policy factory (Knowledge → Policy); ``fleet`` builds a whole fleet's
    policies at once where they share state (federated learners); ``watches_link``: it reads
    the bandwidth monitor, so a live device measures its link for it."""
    if kind not in KINDS:
        raise BadValueError(f"kind must be one of {KINDS}, got {kind!r}")
    unknown = set(worlds) - set(WORLDS)
    if unknown:
        raise BadValueError(f"unknown worlds {sorted(unknown)}: choose from {WORLDS}")

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise BadValueError(f"policy {name!r} is registered twice")
        _REGISTRY[name] = PolicyEntry(
            name, summary, kind, tuple(worlds), factory, fleet, dict(why_not or {}), watches_link
        )
        return factory

    return decorate


def _load() -> dict[str, PolicyEntry]:
    import coinfer.policies.catalog  # noqa: F401  (registers every policy)

    return _REGISTRY


def entries() -> list[PolicyEntry]:
    return list(_load().values())


def names(world: str | None = None, kind: str | None = None) -> list[str]:
    """Registered names (``fixed-K`` stands for every fixed cut), optionally only those that
    run in ``world`` and decide ``kind``."""
    return [
        e.name
        for e in _load().values()
        if (world is None or world in e.worlds) and (kind is None or e.kind == kind)
    ]


def entry(name: str) -> PolicyEntry:
    registry = _load()
    if _FIXED.fullmatch(name):
        return registry["fixed-K"]
    if name not in registry:
        raise BadValueError(
            f"unknown policy {name!r}: choose from {', '.join(registry)} "
            "(coinfer policies lists them)"
        )
    return registry[name]


def check_world(name: str, world: str) -> PolicyEntry:
    found = entry(name)
    if world not in found.worlds:
        raise BadValueError(found.reason(world))
    return found


def create(name: str, knowledge: Knowledge) -> Policy:
    """The policy ``name`` for one device (ValueError naming why it cannot run there)."""
    found = check_world(name, knowledge.world)
    if found.build is None:
        raise BadValueError(found.reason(knowledge.world))
    if found.name == "fixed-K":
        match = _FIXED.fullmatch(name)
        if match is None:
            raise BadValueError("fixed-K: give the cut, e.g. fixed-5")
        from coinfer.policies.static import fixed_cut

        return fixed_cut(int(match.group(1)), knowledge.part.last)
    return found.build(knowledge)


def create_fleet(name: str, fleet: FleetKnowledge) -> tuple[list[Policy], Traffic]:
    """One policy per device of a fleet, and the traffic they will count."""
    from coinfer.policies.fedlinucb import Traffic

    found = check_world(name, "fleet")
    if found.build_fleet is not None:
        return found.build_fleet(fleet)
    return [create(name, k) for k in fleet.devices], Traffic()


def describe() -> list[dict[str, Any]]:
    """Every policy: name, what it decides, the worlds it runs in, and why not elsewhere."""
    return [
        {
            "name": e.name,
            "summary": e.summary,
            "decides": e.kind,
            "worlds": list(e.worlds),
            "not_in": {w: e.reason(w) for w in WORLDS if w not in e.worlds},
        }
        for e in _load().values()
    ]
