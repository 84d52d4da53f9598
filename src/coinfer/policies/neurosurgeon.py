"""Neurosurgeon (Kang et al., ASPLOS 2017): predict every cut's cost, take the argmin.

Latency objective: device time of the front + upload at the estimated bandwidth + edge time ×
the edge load factor K (+ the reply). Energy objective: the device's energy (compute + radio).
Online, the bandwidth estimate is an EWMA of the throughput observed on offloaded frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from coinfer.errors import BadValueError
from coinfer.graph.types import CutTable
from coinfer.latency.devices import DeviceModel
from coinfer.latency.energy import EnergyModel
from coinfer.latency.link import ConstantBandwidth, Link
from coinfer.latency.predict import CutCost, CutCostModel
from coinfer.policies.types import Action, Context, Feedback

OBJECTIVES = ("latency", "energy")


@dataclass(frozen=True)
class Plan:
    cut: int
    cost: CutCost
    costs: tuple[CutCost, ...]


class Neurosurgeon:
    """Cut selection by predicted cost; a Policy whose bandwidth estimate follows the link."""

    def __init__(
        self,
        part: CutTable,
        device: DeviceModel,
        edge: DeviceModel,
        bandwidth_bps: float,
        rtt_s: float = 0.0,
        edge_load: float = 1.0,
        objective: str = "latency",
        energy: EnergyModel | None = None,
        ewma: float = 0.3,
        include_loading: bool = False,
        adaptive: bool = True,
    ) -> None:
        if objective not in OBJECTIVES:
            raise BadValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if objective == "energy" and energy is None:
            raise BadValueError(
                "the energy objective needs an EnergyModel (device and radio power)"
            )
        if not 0 < ewma <= 1:
            raise BadValueError(f"ewma weight must be in (0, 1], got {ewma}")
        self.part = part
        self.device = device
        self.edge = edge
        self.bandwidth_bps = bandwidth_bps
        self.rtt_s = rtt_s
        self.edge_load = edge_load
        self.objective = objective
        self.energy = energy
        self.ewma = ewma
        self.include_loading = include_loading
        self.adaptive = adaptive  # False: the plan made at the start is kept (static)
        self.model = CutCostModel(part, device, edge, include_loading)

    def plan(self, bandwidth_bps: float | None = None, edge_load: float | None = None) -> Plan:
        link = Link(ConstantBandwidth(bandwidth_bps or self.bandwidth_bps), self.rtt_s)
        load = self.edge_load if edge_load is None else edge_load
        costs = self.model.costs(link, load, energy=self.energy)

        def score(c: CutCost) -> float:
            if self.objective == "energy":
                assert c.energy_j is not None
                return c.energy_j
            return c.total_s

        best = min(costs, key=score)
        return Plan(best.cut, best, tuple(costs))

    # Policy protocol ---------------------------------------------------------------
    def select(self, ctx: Context) -> Action:
        return Action(self.plan().cut)

    def update(self, action: Action, fb: Feedback) -> None:
        if self.adaptive and fb.bytes_sent > 0 and fb.uplink_s > 0:
            observed = 8.0 * fb.bytes_sent / fb.uplink_s
            self.bandwidth_bps = self.ewma * observed + (1 - self.ewma) * self.bandwidth_bps
