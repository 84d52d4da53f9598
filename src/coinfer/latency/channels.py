"""Wireless channels for stage-by-stage splitting: a power gain h per stage, a Shannon rate.

Block fading draws a fresh gain for every stage. Under Rayleigh (and Rician) fading the gain's
density is positive at h = 0, so E[1/R(h)] — the expected upload time — is infinite: some block
is always bad enough to take forever. The channels here therefore have an **outage** threshold
h_min: a block with h < h_min cannot carry the upload (the device computes on, or, when it has
no layer left, waits one block and tries again). The finite-state Markov channel has only
positive gains and needs no outage. (DESIGN §4: "say which" — both are offered.) The rate
for a gain is Shannon's (``coinfer.latency.wireless.Radio``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from coinfer.errors import BadValueError


@dataclass(frozen=True)
class RayleighChannel:
    """Rayleigh block fading: h ~ Exponential(mean ``mean_gain``)."""

    mean_gain: float
    h_min: float
    name: str = "rayleigh"

    def __post_init__(self) -> None:
        if not (self.mean_gain > 0 and self.h_min > 0):
            raise BadValueError(
                "a Rayleigh channel needs a positive mean gain and outage threshold"
            )

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean_gain, size)

    def pdf(self, h: float) -> float:
        return math.exp(-h / self.mean_gain) / self.mean_gain if h >= 0 else 0.0

    @property
    def outage(self) -> float:
        return -math.expm1(-self.h_min / self.mean_gain)


@dataclass(frozen=True)
class RicianChannel:
    """Rician block fading with K-factor ``k_factor`` (line-of-sight power over scattered) and
    mean gain ``mean_gain``: h = |a|², a ~ Rice; K = 0 is Rayleigh."""

    k_factor: float
    mean_gain: float
    h_min: float
    name: str = "rician"

    def __post_init__(self) -> None:
        if not (self.k_factor >= 0 and self.mean_gain > 0 and self.h_min > 0):
            raise BadValueError("a Rician channel needs K >= 0, a positive mean gain and h_min > 0")

    @property
    def _dist(self) -> stats.rv_continuous:
        # h·2(K+1)/mean is noncentral chi-square with 2 degrees of freedom and nc = 2K.
        scale = self.mean_gain / (2.0 * (self.k_factor + 1.0))
        return stats.ncx2(df=2, nc=2.0 * self.k_factor, scale=scale)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.asarray(self._dist.rvs(size=size, random_state=rng), dtype=float)

    def pdf(self, h: float) -> float:
        """(K+1)/h̄ · exp(−K − (K+1)h/h̄) · I0(2√(K(K+1)h/h̄)), with I0 scaled for stability."""
        if h < 0:
            return 0.0
        k, m = self.k_factor, self.mean_gain
        z = 2.0 * math.sqrt(k * (k + 1.0) * h / m)
        return float((k + 1.0) / m * math.exp(z - k - (k + 1.0) * h / m) * special.i0e(z))

    @property
    def outage(self) -> float:
        return float(self._dist.cdf(self.h_min))


@dataclass(frozen=True)
class MarkovChannel:
    """A finite-state Markov channel: the gain takes one of ``gains`` and moves between them by
    the row-stochastic ``transition`` from one stage to the next."""

    gains: tuple[float, ...]
    transition: tuple[tuple[float, ...], ...]
    name: str = "fsmc"

    def __post_init__(self) -> None:
        p = np.asarray(self.transition, dtype=float)
        n = len(self.gains)
        if p.shape != (n, n) or not np.allclose(p.sum(axis=1), 1.0) or (p < 0).any():
            raise BadValueError("transition must be a square row-stochastic matrix, a row per gain")
        if min(self.gains) <= 0:
            raise BadValueError("a Markov channel's gains must be positive")

    @classmethod
    def from_lists(
        cls, gains: Sequence[float], transition: Sequence[Sequence[float]]
    ) -> MarkovChannel:
        return cls(tuple(float(g) for g in gains), tuple(tuple(map(float, r)) for r in transition))

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.transition, dtype=float)

    def stationary(self) -> np.ndarray:
        """The stationary distribution over the states."""
        values, vectors = np.linalg.eig(self.matrix.T)
        v = np.real(vectors[:, int(np.argmin(np.abs(values - 1.0)))])
        return np.asarray(v / v.sum())

    def sample_states(
        self, rng: np.random.Generator, size: int, start: int | None = None
    ) -> np.ndarray:
        """A path of ``size`` states, the first drawn from the stationary law unless given."""
        n = len(self.gains)
        states = np.empty(size, dtype=int)
        state = int(rng.choice(n, p=self.stationary())) if start is None else start
        for i in range(size):
            states[i] = state
            state = int(rng.choice(n, p=self.matrix[state]))
        return states


class ChannelDraws:
    """The gains every policy meets, task by task (common random numbers): task t's gain at
    stage l is the l-th draw of a stream seeded by (seed, t), whatever the policy did in
    earlier tasks; a block waited out (outage at the last stage) draws on from that stream."""

    def __init__(
        self, sample: Callable[[np.random.Generator, int], np.ndarray], stages: int, seed: int = 0
    ) -> None:
        self.sample = sample
        self.stages = stages
        self.seed = seed
        self.start(0)

    def start(self, task: int) -> None:
        self._rng = np.random.default_rng([self.seed, task])
        self._gains = np.asarray(self.sample(self._rng, self.stages + 1), dtype=float)

    def gain(self, stage: int) -> float:
        return float(self._gains[stage])

    def redraw(self, stage: int) -> float:
        """A fresh block at ``stage`` (the one before was in outage)."""
        self._gains[stage] = float(self.sample(self._rng, 1)[0])
        return float(self._gains[stage])


CHANNELS = ("rayleigh", "rician")  # the fading laws a stage-wise world may run on


def fading_channel(
    kind: str, mean_gain: float, outage_fraction: float = 0.01, k_factor: float = 3.0
) -> RayleighChannel | RicianChannel:
    """``rayleigh`` or ``rician`` (K = ``k_factor``) block fading around ``mean_gain``, in
    outage below ``outage_fraction`` × the mean gain."""
    if kind == "rayleigh":
        return RayleighChannel(mean_gain, outage_fraction * mean_gain)
    if kind == "rician":
        return RicianChannel(k_factor, mean_gain, outage_fraction * mean_gain)
    raise BadValueError(f"--channel must be rayleigh or rician, not {kind!r}")
