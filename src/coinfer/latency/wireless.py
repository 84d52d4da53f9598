"""The wireless uplink of stage-by-stage splitting: Shannon's rate for a channel power gain."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Radio:
    """The uplink: bandwidth B (Hz), transmit power P (W), noise power σ² (W)."""

    bandwidth_hz: float = 1e6
    power_w: float = 0.1
    noise_w: float = 1e-9

    def rate_bps(self, gain: float | np.ndarray) -> np.ndarray:
        """Shannon: R(h) = B·log2(1 + P·h/σ²)."""
        return self.bandwidth_hz * np.log2(1.0 + self.power_w * np.asarray(gain) / self.noise_w)

    def gain_for_rate(self, rate_bps: float) -> float:
        """The gain at which R(h) = ``rate_bps`` (the inverse of ``rate_bps``)."""
        return self.noise_w / self.power_w * (2.0 ** (rate_bps / self.bandwidth_hz) - 1.0)

    def snr_db(self, gain: float) -> float:
        return 10.0 * math.log10(self.power_w * gain / self.noise_w)
