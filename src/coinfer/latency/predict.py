"""Predicted end-to-end cost of every cut: device compute, upload, edge compute, download."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np

from coinfer.graph.types import CutTable, Op
from coinfer.latency.devices import DeviceModel
from coinfer.latency.energy import EnergyModel
from coinfer.latency.link import Link


@dataclass(frozen=True)
class Breakdown:
    """Where one frame's time went (and the device's energy, when known): predicted by a
    latency model (CutCost) or measured by an environment (policies' Feedback)."""

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


@dataclass(frozen=True)
class CutCost(Breakdown):
    """The predicted breakdown of one frame at cut ``cut``."""

    cut: int = field(kw_only=True)


def _prefix_seconds(device: DeviceModel, ops: Sequence[Op]) -> list[float]:
    """Seconds of ops[:k] on ``device`` for every k = 0..N."""
    return [0.0, *accumulate(device.op_seconds(op) for op in ops)]


def load_seconds(device: DeviceModel, param_bytes: int) -> float:
    """Time to load ``param_bytes`` of weights, for devices with a loading model (Edgent's
    table has one); zero otherwise or when there is nothing to load."""
    loader = getattr(device, "load_seconds", None)
    return float(loader(param_bytes)) if loader is not None and param_bytes > 0 else 0.0


class CutCostModel:
    """Each cut's compute on both sides, summed once, so costs under a changing link and edge
    load cost only the transfers per call (simulators ask every frame).

    ``include_loading`` adds the time each side takes to load its part of the model (a cold
    start, as Edgent's loading regression measures it).
    """

    def __init__(
        self,
        part: CutTable,
        device: DeviceModel,
        edge: DeviceModel,
        include_loading: bool = False,
    ) -> None:
        device_prefix = _prefix_seconds(device, part.ops)
        edge_prefix = _prefix_seconds(edge, part.ops)
        self.last = part.last
        self.result_bytes = part.cuts[-1].boundary_bytes
        self.boundary_bytes = [c.boundary_bytes for c in part.cuts]
        self.device_s = [device_prefix[c.num_device_ops] for c in part.cuts]
        self.edge_s = [edge_prefix[-1] - edge_prefix[c.num_device_ops] for c in part.cuts]
        self.edge_load_s = [0.0] * len(part.cuts)
        self._arrays: tuple[np.ndarray, ...] | None = None
        if include_loading:
            for c in part.cuts:
                self.device_s[c.index] += load_seconds(device, c.device_param_bytes)
                if c.index < part.last:
                    self.edge_load_s[c.index] = load_seconds(edge, c.edge_param_bytes)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Per cut: device seconds, bits sent, edge seconds, edge loading seconds, reply bits,
        and 1.0 where the cut offloads (built once: vectorised predictions ask every frame)."""
        if self._arrays is None:
            offload = (np.arange(len(self.device_s)) < self.last).astype(float)
            self._arrays = (
                np.asarray(self.device_s, dtype=float),
                offload * 8.0 * np.asarray(self.boundary_bytes, dtype=float),
                np.asarray(self.edge_s, dtype=float),
                np.asarray(self.edge_load_s, dtype=float),
                offload * 8.0 * self.result_bytes,
                offload,
            )
        return self._arrays

    def breakdown(
        self, link: Link, edge_load: float = 1.0, start: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every cut's device, upload, edge and download seconds for a frame starting at
        ``start`` (seconds into the link's trace), edge compute scaled by ``edge_load``
        (Neurosurgeon's K): the delay formula of DESIGN §3, written once. A transfer takes
        bits / bandwidth (integrated over a trace from the moment it starts) + RTT/2; the last
        cut sends nothing and hears nothing back."""
        device, bits, edge_s, edge_load_s, result_bits, offload = self.arrays()
        one_way = offload * link.one_way_s
        up = _transfers(link.uplink, bits, start + device) + one_way
        edge = edge_load * edge_s + edge_load_s
        down = _transfers(link.downlink or link.uplink, result_bits, start + device + up + edge)
        return device, up, edge, down + one_way

    def costs(
        self,
        link: Link,
        edge_load: float = 1.0,
        start: float = 0.0,
        energy: EnergyModel | None = None,
    ) -> list[CutCost]:
        """Every cut's cost (``breakdown``) with the bytes sent and, given an energy model, the
        device's joules."""
        device, up, edge, down = self.breakdown(link, edge_load, start)
        costs = []
        for k in range(len(device)):
            sent = self.boundary_bytes[k] if k < self.last else 0
            joules = None
            if energy is not None:
                rate = link.uplink.at(start + float(device[k]))
                joules = energy.device_joules(float(device[k]), float(up[k]), rate)
            costs.append(
                CutCost(
                    float(device[k]),
                    float(up[k]),
                    float(edge[k]),
                    float(down[k]),
                    sent,
                    joules,
                    cut=k,
                )
            )
        return costs


def _transfers(bandwidth: object, bits: np.ndarray, starts: np.ndarray) -> np.ndarray:
    many = getattr(bandwidth, "transfer_seconds_many", None)
    if many is not None:
        return np.asarray(many(bits, starts))
    return np.array(
        [
            bandwidth.transfer_seconds(b, s) if b > 0 else 0.0  # type: ignore[attr-defined]
            for b, s in zip(bits, starts, strict=True)
        ]
    )


def cut_totals(
    model: CutCostModel, link: Link, edge_load: float = 1.0, start: float = 0.0
) -> np.ndarray:
    """Every cut's total delay (``costs(...)[k].total_s``)."""
    device, up, edge, down = model.breakdown(link, edge_load, start)
    return np.asarray(device + up + edge + down)


def predict_cut_costs(
    part: CutTable,
    device: DeviceModel,
    edge: DeviceModel,
    link: Link,
    edge_load: float = 1.0,
    start: float = 0.0,
    energy: EnergyModel | None = None,
    include_loading: bool = False,
) -> list[CutCost]:
    """Cost of every cut of ``part``; ``edge_load`` (Neurosurgeon's K) scales edge compute.

    The edge replies with the model's output, so every cut but the last also downloads the
    output bytes. Transfers start at ``start`` (seconds into a bandwidth trace).
    """
    model = CutCostModel(part, device, edge, include_loading)
    return model.costs(link, edge_load, start, energy)


def predict_edge_first_costs(
    part: CutTable,
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
    device_prefix = _prefix_seconds(device, part.ops)
    edge_prefix = _prefix_seconds(edge, part.ops)
    input_bytes = part.cuts[0].boundary_bytes
    costs = []
    for cut in part.cuts:
        k = cut.num_device_ops
        up = link.upload_seconds(input_bytes, start) if k > 0 else 0.0
        edge_s = edge_load * edge_prefix[k]
        down = link.download_seconds(cut.boundary_bytes, start + up + edge_s) if k > 0 else 0.0
        device_s = device_prefix[-1] - device_prefix[k]
        costs.append(CutCost(device_s, up, edge_s, down, input_bytes if k else 0, cut=cut.index))
    return costs
