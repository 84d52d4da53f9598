"""Device energy: compute power × compute time + radio power × upload time (Neurosurgeon).

The radio's uplink power follows the linear model of Huang et al. (MobiSys 2012), which
Neurosurgeon (Kang et al., ASPLOS 2017) uses: P_up = α_u · throughput (Mbit/s) + β.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RadioPower:
    alpha_w_per_mbps: float
    beta_w: float

    def watts(self, bandwidth_bps: float) -> float:
        return self.alpha_w_per_mbps * bandwidth_bps / 1e6 + self.beta_w


# Huang et al., "A Close Examination of Performance and Power Characteristics of 4G LTE
# Networks", MobiSys 2012: uplink alpha (mW per Mbit/s) and beta (mW).
RADIOS: dict[str, RadioPower] = {
    "3g": RadioPower(0.86898, 0.81788),
    "lte": RadioPower(0.43839, 1.28804),
    "wifi": RadioPower(0.28317, 0.13286),
}


@dataclass(frozen=True)
class EnergyModel:
    """Energy the device spends on one frame: computing its part and sending the boundary."""

    compute_w: float
    radio: RadioPower

    def device_joules(self, compute_s: float, upload_s: float, bandwidth_bps: float) -> float:
        return self.compute_w * compute_s + self.radio.watts(bandwidth_bps) * upload_s


# Whole-board power under full CPU load, assumed: Raspberry Pi 3 about 3.7 W (community
# measurements of the 3B under stress), a phone-class SoC about 2 W.
COMPUTE_POWER_W: dict[str, float] = {"rpi3": 3.7, "host": 2.0}
