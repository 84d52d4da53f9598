"""CANS simulated: fleets of devices sharing one edge (``sim.fleet``) in the worlds of
``systems.cans.worlds`` — one fleet, one policy, one seed as a job (``run_case``), every policy on
the same fleet (``simulate_fleet``: ``coinfer fleet``), and the demo's two pairs
(``simulate_pairs``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coinfer.assembly import zoo_setup
from coinfer.defaults import NOISE
from coinfer.errors import BadValueError
from coinfer.policies import registry
from coinfer.policies.experience import Experience
from coinfer.policies.fedlinucb import WARM_POLICIES, Federation
from coinfer.sim.fleet import DeviceType, FleetDevice, FleetSim
from coinfer.sim.fleet_clock import FleetRun
from coinfer.sim.fleet_policies import make_fleet_policies
from coinfer.systems.cans.worlds import (
    NETWORKS,
    WORLDS,
    build_sim,
    load_or_make_experience,
    make_experience,
    network_link,
    world_types,
)

Progress = Callable[[str, int, int], None]


def run_case(
    devices: int,
    types: int | None,
    policy: str,
    seed: int,
    frames: int,
    experience: Sequence[str] | None = None,
    federation: dict[str, Any] | None = None,
    link_scale: float = 1.0,
    world_name: str = "3g",
) -> dict[str, Any]:
    """One fleet, one policy, one seed (a job for the engine: plain arguments, plain result)."""
    sim = build_sim(devices, types, seed, link_scale, world_name=world_name)
    loaded = [Experience.load(p) for p in experience] if experience else None
    fed = Federation(**(federation or {}))
    policies, traffic = make_fleet_policies(policy, sim, loaded, fed)
    run = sim.run(policies, frames)
    return {
        "world": world_name,
        "learner": "link" if fed.link_feature else "paper",
        "devices": devices,
        "types": len({d.kind.name for d in sim.devices}),
        "policy": policy,
        "seed": seed,
        **summarise(run),
        "messages": traffic.messages,
        "bytes": traffic.bytes,
        "curve": run.latency_by_frame().tolist(),
    }


@dataclass(frozen=True)
class FleetConfig:
    """A fleet as asked (``coinfer fleet``), checked on creation: ``devices`` devices of
    ``types`` types (the 3G world's; the others set their own) in ``world``, the policies to
    run on it, frames per device, the federation's settings, the links' scale, a shared uplink
    and where the devices' offline experience is kept."""

    devices: int = 2
    types: int | None = None
    world: str = "3g"
    policies: tuple[str, ...] = ("noncoop", "fedlinucb", "fedlinucb-d", "fedlinucb-dw")
    frames: int = 1000
    seed: int = 0
    federation: Federation = field(default_factory=Federation)
    link_scale: float = 1.0
    shared_uplink_bps: float | None = None
    experience: Path | None = None

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise BadValueError(f"unknown world {self.world!r}: choose from {', '.join(WORLDS)}")
        known = WORLDS[self.world]
        if not known.fixed_types and self.types is not None and self.types > len(known.types):
            names = ", ".join(t for t, _ in known.types)
            raise BadValueError(f"--types is at most {len(known.types)} ({names})")
        world_types(self.world, self.types)  # how many types the world takes
        for name in self.policies:  # before any experience is made: one line naming why not
            registry.check_world(name, "fleet")
        if self.devices < 1 or self.frames < 1:
            raise BadValueError("a fleet needs at least one device and one frame")


def simulate_fleet(config: FleetConfig, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Every policy on the same fleet: one row each, with the ratio to non-cooperative
    μLinUCB when it ran."""
    c = config
    types = c.types if c.world != "3g" or c.types is not None else 1
    fed = c.federation
    experiences = None
    if any(p in WARM_POLICIES for p in c.policies):
        scale = "" if c.link_scale == 1 else f"-x{c.link_scale:g}"  # experience of its own links
        kinds = "" if types is None else f"-K{types}"
        name = f"{c.world}-M{c.devices}{kinds}-seed{c.seed}{scale}"
        folder = c.experience or Path("results") / "experience" / name
        experiences = load_or_make_experience(
            c.devices, types, c.seed, folder, c.link_scale, c.world
        )
    rows = []
    for name in c.policies:
        sim = build_sim(c.devices, types, c.seed, c.link_scale, c.shared_uplink_bps, c.world)
        chosen, traffic = make_fleet_policies(name, sim, experiences, fed)

        def tick(done: int, name: str = name) -> None:
            if progress is not None:
                progress(name, done, c.devices * c.frames)

        run = sim.run(chosen, c.frames, tick)
        rows.append(
            {
                "world": c.world,
                "policy": name,
                "devices": c.devices,
                "types": len({d.kind.name for d in sim.devices}),
                "learner": "link" if fed.link_feature else "paper",
                **summarise(run),
                "messages": traffic.messages,
                "kbytes": traffic.bytes / 1e3,
            }
        )
    base = next((r for r in rows if r["policy"] == "noncoop"), None)
    for row in rows:
        if base is not None:
            row["vs_noncoop"] = row["mean_latency_s"] / base["mean_latency_s"]
    return rows


def summarise(run: FleetRun) -> dict[str, Any]:
    return {
        "mean_latency_s": run.mean_latency(),
        "first_100_s": run.mean_latency(100),
        "first_200_s": run.mean_latency(200),
        "regret_s": run.mean_regret(),
        "offload_share": run.offload_share(),
        "per_type_s": run.per_type(),
    }


def simulate_pairs(
    model: str, device: str, frames: int, starts: list[float], seed: int, network: str = "wlan"
) -> dict[str, float]:
    """The CANS demo's two-device world in the fleet simulator, each device of a pair on its
    stretch of link from ``starts``: each pair's mean latency, cooperating and alone."""
    setup = zoo_setup(model, device)
    kind = DeviceType(f"{device}-{model}", model, setup.model.part, setup.device, setup.edge)
    fleet = [FleetDevice(kind, network_link(NETWORKS[network], offset)) for offset in starts]
    experience = [make_experience(d, seed * 1000 + i) for i, d in enumerate(fleet)]
    means = {}
    for pair, policy in (("cooperating", "fedlinucb-dw"), ("alone", "noncoop")):
        sim = FleetSim(fleet, 1, None, NOISE, seed=seed)
        chosen, _ = make_fleet_policies(policy, sim, experience, Federation(link_feature=False))
        means[pair] = sim.run(chosen, max(1, frames)).mean_latency()
    return means
