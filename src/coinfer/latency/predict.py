"""Predicted end-to-end cost of every cut: device compute, upload, edge compute, download."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

from coinfer.graph.partition import Partitioning
from coinfer.latency.devices import DeviceModel
from coinfer.latency.energy import EnergyModel
from coinfer.latency.link import Link


@dataclass(frozen=True)
class CutCost:
    """Predicted seconds of one frame at one cut, and the device's energy when modelled."""

    cut: int
    device_s: float
    uplink_s: float
    edge_s: float
    downlink_s: float
    bytes_sent: int
    energy_j: float | None = None

    @property
    def total_s(self) -> float:
        return self.device_s + self.uplink_s + self.edge_s + self.downlink_s

    def breakdown(self) -> dict[str, float]:
        out = {
            "device_s": self.device_s,
            "uplink_s": self.uplink_s,
            "edge_s": self.edge_s,
            "downlink_s": self.downlink_s,
            "total_s": self.total_s,
        }
        if self.energy_j is not None:
            out["energy_j"] = self.energy_j
        return out


def predict_cut_costs(
    part: Partitioning,
    device: DeviceModel,
    edge: DeviceModel,
    link: Link,
    edge_load: float = 1.0,
    start: float = 0.0,
    energy: EnergyModel | None = None,
) -> list[CutCost]:
    """Cost of every cut of ``part``; ``edge_load`` (Neurosurgeon's K) scales edge compute.

    The edge replies with the model's output, so every cut but the last also downloads the
    output bytes. Transfers start at ``start`` (seconds into a bandwidth trace).
    """
    device_prefix = [0.0, *accumulate(device.op_seconds(op) for op in part.ops)]
    edge_prefix = [0.0, *accumulate(edge.op_seconds(op) for op in part.ops)]
    edge_total = edge_prefix[-1]
    result_bytes = part.cuts[-1].boundary_bytes
    costs = []
    for cut in part.cuts:
        k = cut.num_device_ops
        offload = cut.index < part.last
        device_s = device_prefix[k]
        up = link.upload_seconds(cut.boundary_bytes, start + device_s) if offload else 0.0
        edge_s = edge_load * (edge_total - edge_prefix[k]) if offload else 0.0
        down = (
            link.download_seconds(result_bytes, start + device_s + up + edge_s) if offload else 0.0
        )
        joules = None
        if energy is not None:
            joules = energy.device_joules(device_s, up, link.uplink.at(start + device_s))
        costs.append(
            CutCost(
                cut.index, device_s, up, edge_s, down, cut.boundary_bytes if offload else 0, joules
            )
        )
    return costs


def predict_edge_first_costs(
    part: Partitioning,
    device: DeviceModel,
    edge: DeviceModel,
    link: Link,
    edge_load: float = 1.0,
    start: float = 0.0,
) -> list[CutCost]:
    """Edgent's own orientation: the device uploads the input, the edge runs the first layers
    (ops before cut k), sends the boundary back, and the device runs the tail.

    Cut 0 is then device-only (nothing is sent) and the last cut edge-only.
    """
    device_prefix = [0.0, *accumulate(device.op_seconds(op) for op in part.ops)]
    edge_prefix = [0.0, *accumulate(edge.op_seconds(op) for op in part.ops)]
    input_bytes = part.cuts[0].boundary_bytes
    costs = []
    for cut in part.cuts:
        k = cut.num_device_ops
        up = link.upload_seconds(input_bytes, start) if k > 0 else 0.0
        edge_s = edge_load * edge_prefix[k]
        down = link.download_seconds(cut.boundary_bytes, start + up + edge_s) if k > 0 else 0.0
        device_s = device_prefix[-1] - device_prefix[k]
        costs.append(CutCost(cut.index, device_s, up, edge_s, down, input_bytes if k else 0))
    return costs
