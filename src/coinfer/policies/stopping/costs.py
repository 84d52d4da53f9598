"""The stage costs of online splitting: Y_l(h) = G_l + k·D_l / R(h) from a chain's per-layer
device and edge times and the bits each stage sends (``policies.stopping``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from coinfer.errors import BadValueError
from coinfer.graph.types import CutTable
from coinfer.latency.devices import DeviceModel
from coinfer.latency.predict import CutCostModel
from coinfer.latency.wireless import Radio

RADIO = Radio(bandwidth_hz=1e6, power_w=0.1, noise_w=1e-9)  # the uplink of every stopping run
COMPUTE_W = 2.0  # the device's power while computing (W)


def gain_for_snr(snr_db: float, radio: Radio = RADIO) -> float:
    """The mean channel gain at which the mean SNR is ``snr_db``."""
    return float(10 ** (snr_db / 10) * radio.noise_w / radio.power_w)


class Fading(Protocol):
    """An i.i.d. channel gain per stage with an outage threshold h_min; ``mean_gain`` sets the
    scale the integrals are taken in."""

    @property
    def h_min(self) -> float: ...

    @property
    def mean_gain(self) -> float: ...

    def pdf(self, h: float) -> float: ...

    @property
    def outage(self) -> float: ...


@dataclass(frozen=True)
class StoppingCosts:
    """The stage costs of one chain model: ``fixed[l]`` = G_l and ``bits[l]`` = D_l for
    l = 0..N (``bits[N]`` = 0), k = P_tx + w, the radio, and the block length (waiting)."""

    fixed: np.ndarray
    bits: np.ndarray
    transmit_w: float
    time_weight: float
    radio: Radio
    block_s: float

    @property
    def k(self) -> float:
        return self.transmit_w + self.time_weight

    @property
    def layers(self) -> int:
        return len(self.fixed) - 1

    def stop_cost(self, stage: int, gain: float | np.ndarray) -> np.ndarray:
        """Y_l(h) (infinite in outage is the caller's business: this is the formula)."""
        if self.bits[stage] == 0:
            return np.full_like(np.asarray(gain, dtype=float), self.fixed[stage])
        return np.asarray(
            self.fixed[stage] + self.k * self.bits[stage] / self.radio.rate_bps(gain), dtype=float
        )


def chain_costs(
    device_s: Sequence[float] | np.ndarray,
    edge_s: Sequence[float] | np.ndarray,
    bits: Sequence[float] | np.ndarray,
    compute_w: float,
    transmit_w: float,
    time_weight: float,
    radio: Radio,
    block_s: float = 0.01,
) -> StoppingCosts:
    """Stage costs from per-layer device times τ_i, edge times s_i (i = 1..N) and the bits D_l
    at each stage l = 0..N−1 (the device's energy per layer is e_i = compute_w·τ_i)."""
    tau = np.asarray(device_s, dtype=float)
    s = np.asarray(edge_s, dtype=float)
    if len(tau) != len(s) or len(bits) != len(tau):
        raise BadValueError("need N device times, N edge times and the bits at stages 0..N-1")
    device_part = np.concatenate([[0.0], np.cumsum((compute_w + time_weight) * tau)])
    edge_left = np.concatenate([np.cumsum(s[::-1])[::-1], [0.0]])  # Σ_{i>l} s_i
    fixed = device_part + time_weight * edge_left
    return StoppingCosts(
        fixed,
        np.append(np.asarray(bits, dtype=float), 0.0),
        transmit_w,
        time_weight,
        radio,
        block_s,
    )


def model_costs(
    part: CutTable,
    device: DeviceModel,
    edge: DeviceModel,
    compute_w: float,
    transmit_w: float,
    time_weight: float,
    radio: Radio,
    block_s: float = 0.01,
) -> StoppingCosts:
    """Stage costs of a model's layer cuts (stage l = cut l), from the latency models."""
    tau, s, bits = chain_times(part, device, edge)
    return chain_costs(tau, s, bits, compute_w, transmit_w, time_weight, radio, block_s)


def chain_times(
    part: CutTable, device: DeviceModel, edge: DeviceModel
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Each layer's device time τ_i and edge time s_i (i = 1..N) between a model's layer cuts,
    and the bits D_l each cut l = 0..N−1 sends, from the latency models."""
    model = CutCostModel(part, device, edge)
    tau = np.diff(np.asarray(model.device_s))
    s = -np.diff(np.asarray(model.edge_s))
    return tau, s, [8.0 * b for b in model.boundary_bytes[:-1]]
