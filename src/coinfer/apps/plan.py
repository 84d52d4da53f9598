"""`coinfer plan`: where to cut a model — and, with Edgent, how deep to run it — for a device,
an edge and a link, with the predicted breakdown of every cut."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from coinfer.assembly import DeviceSetup, assemble, device_setup, load_model
from coinfer.defaults import EDGE_CLASS, PLAN_DEVICE_CLASS
from coinfer.errors import BadValueError
from coinfer.graph import GRANULARITIES
from coinfer.graph.types import CutTable
from coinfer.latency.energy import COMPUTE_POWER_W, RADIOS, EnergyModel
from coinfer.latency.predict import CutCost
from coinfer.policies.edgent import ORIENTATIONS, EdgentChoice, EdgentPlanner
from coinfer.policies.neurosurgeon import OBJECTIVES, Neurosurgeon
from coinfer.units import check_positive
from coinfer.zoo.spec import ModelSpec

PLANNERS = ("neurosurgeon", "edgent")


def _one_of(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadValueError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


@dataclass(frozen=True)
class PlanConfig:
    """A plan as asked, checked on creation (values already read: bits per second, seconds)."""

    model: ModelSpec
    policy: str = "neurosurgeon"
    device: str = PLAN_DEVICE_CLASS
    edge: str = EDGE_CLASS
    bandwidth_bps: float = 1e6
    rtt_s: float = 0.0
    edge_load: float = 1.0
    objective: str = "latency"
    radio: str = "wifi"
    latency_req_s: float = 0.5
    orientation: str = "device-first"
    cold_start: bool = False
    granularity: str = "layer"
    bundle: Path | None = None  # the device runs this bundle's fronts in ONNX Runtime

    def __post_init__(self) -> None:
        _one_of("--policy", self.policy, PLANNERS)
        _one_of("--objective", self.objective, OBJECTIVES)
        _one_of("--radio", self.radio, tuple(RADIOS))
        _one_of("--granularity", self.granularity, GRANULARITIES)
        _one_of("--orientation", self.orientation, ORIENTATIONS)
        check_positive(self.edge_load, "--edge-load")
        if self.bundle is not None and not self.device.startswith("host"):
            raise BadValueError(
                f"--bundle times the fronts in ONNX Runtime on this host: it goes with --device "
                f"host (or host/N, host*N), not {self.device!r}"
            )


@dataclass(frozen=True)
class Plan:
    """The chosen cut (and exit) of the partitioning it was chosen on, and every cut's cost."""

    config: PlanConfig
    part: CutTable
    cut: int
    cost: CutCost
    costs: list[CutCost]
    edgent: EdgentChoice | None = None

    def document(self) -> dict[str, Any]:
        """The plan as ``--json`` prints it."""
        c, cut = self.config, self.part.cuts[self.cut]
        choice = self.edgent
        return {
            "model": c.model.name,
            "policy": c.policy,
            "device": c.device,
            "edge": c.edge,
            "bandwidth_bps": c.bandwidth_bps,
            "objective": c.objective,
            "cut": self.cut,
            "cut_name": cut.name,
            "index": self.cut,
            "name": cut.name,
            "num_cuts": self.part.num_cuts,
            "exit": choice.exit if choice else None,
            "predicted_s": self.cost.total_s,
            "accuracy": choice.accuracy if choice else None,
            "meets_requirement": choice.meets_requirement if choice else None,
            "breakdown": self.cost.breakdown(),
            "cuts": [
                k.breakdown() | {"cut": k.cut, "index": k.cut, "name": self.part.cuts[k.cut].name}
                for k in self.costs
            ],
        }


def plan(config: PlanConfig) -> Plan:
    """Plan ``config``'s model: Neurosurgeon's argmin over the cuts (latency or the device's
    energy), or Edgent's most accurate exit whose best cut meets the requirement."""
    setup = _setup(config)
    radio = RADIOS[config.radio]
    energy = EnergyModel(COMPUTE_POWER_W.get(config.device.split("/")[0], 2.0), radio)
    if config.policy == "edgent":
        choice, part, costs = _edgent(setup, config)
        costs = [
            dataclasses.replace(
                c, energy_j=energy.device_joules(c.device_s, c.uplink_s, config.bandwidth_bps)
            )
            for c in costs
        ]
        chosen = next(c for c in costs if c.cut == choice.cut)
        return Plan(config, part, choice.cut, chosen, costs, choice)
    planner = Neurosurgeon(
        setup.model.part,
        setup.device,
        setup.edge,
        config.bandwidth_bps,
        config.rtt_s,
        config.edge_load,
        config.objective,
        energy=energy,
        include_loading=config.cold_start,
    )
    found = planner.plan()
    return Plan(config, setup.model.part, found.cut, found.cost, list(found.costs))


def _setup(config: PlanConfig) -> DeviceSetup:
    """The model on its classes; with a bundle, the device's ``host`` is its fronts timed in
    ONNX Runtime here (the edge's stays torch's)."""
    if config.bundle is None:
        return assemble(config.model, config.device, config.edge, config.granularity)
    from coinfer.bundle.runtime import OnnxBundle, bundle_profile, check_same_model

    model = load_model(config.model, config.granularity)
    fronts = OnnxBundle(config.bundle, threads=torch.get_num_threads())
    check_same_model(fronts, model.part.fingerprint, config.model.name)
    return device_setup(model, config.device, config.edge, lambda: bundle_profile(fronts))


def _edgent(setup: DeviceSetup, c: PlanConfig) -> tuple[EdgentChoice, CutTable, list[CutCost]]:
    paths = setup.model.exits
    if not paths:
        raise BadValueError(
            f"Edgent needs a multi-exit model with known per-exit accuracy; "
            f"{setup.model.name!r} has one exit. Use branchy_alexnet (trained "
            f"weights ship with coinfer)."
        )
    planner = EdgentPlanner(
        paths, setup.device, setup.edge, c.rtt_s, c.edge_load, c.orientation, c.cold_start
    )
    choice = planner.plan(c.bandwidth_bps, c.latency_req_s)
    path = next(p for p in paths if p.exit == choice.exit)
    return choice, path.part, planner.costs(path, c.bandwidth_bps)
