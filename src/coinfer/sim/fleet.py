"""Many devices, one edge (CANS's world): a discrete-event simulation in continuous time.

Every device runs its own frames back to back (or no faster than ``frame_interval_s``): it
computes the front of its model, uploads the boundary over its own link (a trace read at the
moment of the transfer, or a share of a common uplink capacity), waits for the edge, and hears
the reply. The edge is a processor-sharing server with ``edge_slots`` slots: with n jobs in
service each runs at min(1, slots / n) of its uncontended speed, so the back-end time a device
measures grows with the load the other devices put on it — the non-stationarity its learner
has to follow. Deterministic for a seed (per-device noise streams, ties broken by device).

The truth for regret and the Oracle is each cut's expected delay for a frame starting now, with
the edge's and the shared uplink's current load held fixed (one more job: this device's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from coinfer.defaults import NOISE
from coinfer.errors import BadValueError
from coinfer.graph.types import CutTable
from coinfer.latency.devices import DeviceModel
from coinfer.latency.link import ConstantBandwidth, Link
from coinfer.latency.predict import CutCostModel, cut_totals
from coinfer.policies.types import Policy
from coinfer.sim.fleet_clock import FleetClock, FleetRun
from coinfer.sim.sharing import SharedResource


@dataclass(frozen=True)
class DeviceType:
    """What every device of one type shares: the model, its cuts, and each cut's compute on
    this device class and on the (uncontended) edge."""

    name: str
    model: str
    part: CutTable
    device: DeviceModel
    edge: DeviceModel

    @property
    def last(self) -> int:
        return self.part.last

    def cost_model(self) -> CutCostModel:
        return CutCostModel(self.part, self.device, self.edge)


@dataclass(frozen=True)
class FleetDevice:
    kind: DeviceType
    link: Link
    key_weights: Sequence[float] = (0.2,)  # looped over the device's frames


class FleetSim:
    """``run(policies, frames)``: one policy per device, each device ``frames`` frames.

    Each device runs the one loop (``policies.loop.play``) like every other world; the fleet
    is its Environment, split in time: when a device's frame starts, the fleet sets what it
    observes and takes the loop's action; when the frame's last event happens, the loop gets
    its Feedback (handed over as the device's next frame starts — the same instant, frames
    running back to back — so the policy learns before it next selects, as in any world).
    """

    def __init__(
        self,
        devices: Sequence[FleetDevice],
        edge_slots: int = 1,
        shared_uplink_bps: float | None = None,
        noise: float = NOISE,
        frame_interval_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not devices:
            raise BadValueError("a fleet needs at least one device")
        if edge_slots < 1:
            raise BadValueError(f"the edge needs at least one slot, got {edge_slots}")
        if shared_uplink_bps is not None and not shared_uplink_bps > 0:
            raise BadValueError(
                f"a shared uplink needs a positive capacity, got {shared_uplink_bps}"
            )
        if noise < 0:
            raise BadValueError(f"noise is a standard deviation: >= 0, got {noise}")
        self.devices = list(devices)
        self.edge_slots = edge_slots
        self.shared_uplink_bps = shared_uplink_bps
        self.noise = noise
        self.frame_interval_s = frame_interval_s
        self.seed = seed
        models: dict[str, CutCostModel] = {}
        for d in self.devices:
            models.setdefault(d.kind.name, d.kind.cost_model())
        self._models = [models[d.kind.name] for d in self.devices]
        self._truth = [np.zeros(d.kind.last + 1) for d in self.devices]

    def cost_model(self, device: int) -> CutCostModel:
        return self._models[device]

    def truth(self, device: int) -> np.ndarray:
        """Each cut's expected delay for the device's current frame (set when it starts)."""
        return self._truth[device]

    def set_truth(self, i: int, t: float, edge: SharedResource, up: SharedResource | None) -> None:
        """Each cut's expected delay for device ``i``'s frame starting at ``t``, the edge's and
        the shared uplink's load as they are now (one more job: this device's)."""
        dev = self.devices[i]
        slowdown = 1.0 / edge.rate_if_added(1.0)
        link = dev.link
        if up is not None:
            rate = up.rate_if_added(dev.link.uplink.at(t))
            link = Link(
                ConstantBandwidth(rate), dev.link.rtt_s, dev.link.downlink or dev.link.uplink
            )
        self._truth[i] = cut_totals(self._models[i], link, slowdown, t)

    def run(
        self,
        policies: Sequence[Policy],
        frames: int,
        on_frame: Callable[[int], None] | None = None,
    ) -> FleetRun:
        """Simulate until every device has run ``frames`` frames; ``on_frame(done)`` counts
        device-frames as they finish."""
        m = len(self.devices)
        if len(policies) != m:
            raise BadValueError(
                f"need one policy per device: {m} devices, {len(policies)} policies"
            )
        if frames < 1:
            raise BadValueError(f"frames must be at least 1, got {frames}")
        return FleetClock(self, policies, frames, on_frame).run()
