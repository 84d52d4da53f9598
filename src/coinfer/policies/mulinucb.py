"""μLinUCB as the ANS authors built it (Zhang, Chen, Xu, WWW 2021; their public muLinUCB.py and
camera client), with clean numerics (DESIGN §4, first variant).

Their rules: the 7 ANS features of each cut, raw (MACs, layer counts, elements, bytes); a prior
A₀ = diag of random integers in 1..8, b₀ = 0; the learned target is the measured offload time
in seconds (send to reply: upload + edge + download); α = (C_θ + C_noise·√(d·ln((1 + T·C_x²)/δ)))
/ (1 − L_key) with C_x = maxₚ ‖x_p‖²; the horizon T starts at 200 and doubles when the frame
counter passes it, the counter then restarting at 0; a frame whose counter is a multiple of
F = ⌈T^μ⌉ is forced off the device; the score s_p = d_f(p) + x_pᵀθ̂ − α·√((1 − L_t)·x_pᵀA⁻¹x_p)
with L_t = 0.8 on a key frame and 0.2 otherwise; A, b learn only from offloaded frames.

Their code inverts A every frame. With raw features A spans twenty orders of magnitude (a MAC
count beside a layer count), so an explicit inverse — and even A itself, where the prior is
lost below the rounding of the data terms — is numerically meaningless. Here A is never
formed: the features are scaled by their maxima (an exact change of basis: A' = S⁻¹AS⁻¹,
b' = S⁻¹b leave every xᵀA⁻¹x and xᵀθ̂ unchanged) and A' is kept as its triangular square
root R (A' = RᵀR, updated by a QR of [R; zᵀ] per offloaded frame), which holds the prior to
about √ε of the data instead of ε. Scores then need R⁻¹ (a 7×7 triangle) once per update
and nothing per frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from coinfer.graph.types import ANS_FEATURES, Cut
from coinfer.policies.types import Action, Context, Feedback

PRIOR_HIGH = 8  # A₀'s diagonal: random integers in 1..8


@dataclass(frozen=True)
class ExplorationRules:
    """μLinUCB's exploration constants (ANS), shared by the authors' algorithm and coinfer's
    tuned variant: L_key, the first horizon T, μ of the forced period, δ, C_noise, C_θ."""

    key_weight: float = 0.8
    horizon: int = 200
    mu: float = 0.25
    delta: float = 0.1
    c_noise: float = 0.05
    c_theta: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.key_weight < 1:
            raise ValueError(f"key_weight must be in [0, 1), got {self.key_weight}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon}")

    def alpha(self, horizon: int, c_x: float, dim: int) -> float:
        """α(T) = (C_θ + C_noise·√(d·ln((1 + T·C_x²)/δ)))/(1 − L_key)."""
        log_term = math.log((1 + horizon * c_x**2) / self.delta)
        return (self.c_theta + self.c_noise * math.sqrt(dim * log_term)) / (1 - self.key_weight)

    def forced_period(self, horizon: int) -> int:
        """F = ⌈T^μ⌉: every F-th frame of an epoch is forced off the device."""
        return math.ceil(horizon**self.mu)


EXPLORATION = ExplorationRules()


class MuLinUCB:
    """The ANS authors' μLinUCB; ``seed`` draws A₀ (the same seed, the same decisions)."""

    def __init__(
        self,
        cuts: Sequence[Cut],
        device_front_s: Sequence[float],
        seed: int = 0,
        rules: ExplorationRules = EXPLORATION,
    ) -> None:
        if len(device_front_s) != len(cuts):
            raise ValueError("need the device's front delay of every cut")
        raw = np.array([c.feature_vector(ANS_FEATURES) for c in cuts], dtype=float)
        raw[-1] = 0.0  # on the device nothing reaches the edge: d(P) = d_f(P), known
        scale = raw.max(axis=0)
        scale[scale == 0] = 1.0
        self.scale = scale
        self.z = raw / scale
        self.front = np.asarray(device_front_s, dtype=float)
        self.last = len(cuts) - 1
        dim = raw.shape[1]
        prior = np.random.default_rng(seed).integers(1, PRIOR_HIGH + 1, size=dim)
        self.r = np.diag(np.sqrt(prior) / scale)  # the square root of A₀' = S⁻¹A₀S⁻¹
        self.b = np.zeros(dim)
        self.c_x = float(max(np.sum(raw**2, axis=1)))
        self.rules = rules
        self.counter = 0
        self._set_horizon(rules.horizon)
        self._refresh()

    def _set_horizon(self, horizon: int) -> None:
        self.horizon = horizon
        self.alpha = self.rules.alpha(horizon, self.c_x, self.z.shape[1])
        self.forced_period = self.rules.forced_period(horizon)

    def _refresh(self) -> None:
        """Each cut's xᵀA⁻¹x and xᵀθ̂ from R: with v_p = R⁻ᵀz_p and w = R⁻ᵀb', xᵀA⁻¹x = ‖v_p‖²
        and xᵀθ̂ = v_pᵀw (R⁻¹ of a 7×7 triangle: one LAPACK call, then products)."""
        self._r_inv = _triangular_inverse(self.r)
        v = self.z @ self._r_inv  # row p: (R⁻ᵀ z_p)ᵀ
        w = self.b @ self._r_inv
        self.quad = np.einsum("pi,pi->p", v, v)
        self.estimate = v @ w

    @property
    def theta(self) -> np.ndarray:
        """θ̂ in the raw features' basis (per MAC, per layer, per byte...)."""
        return np.asarray(self._r_inv @ (self._r_inv.T @ self.b) / self.scale)

    def scores(self, ctx: Context) -> np.ndarray:
        explore = 1.0 - min(max(ctx.key_weight, 0.0), 1.0)
        return np.asarray(self.front + self.estimate - self.alpha * np.sqrt(explore * self.quad))

    def select(self, ctx: Context) -> Action:
        self.counter += 1
        if self.counter > self.horizon:  # doubling trick: A and b are kept, the counter restarts
            self._set_horizon(2 * self.horizon)
            self.counter = 0
        scores = self.scores(ctx)
        if self.counter % self.forced_period == 0:
            scores[self.last] = np.inf  # forced sampling: the best cut off the device
        return Action(int(np.argmin(scores)))

    def update(self, action: Action, fb: Feedback) -> None:
        if action.cut == self.last:  # the on-device cut teaches nothing about the edge
            return
        z = self.z[action.cut]
        offload_s = fb.uplink_s + fb.edge_s + fb.downlink_s
        stacked, _tau, _work, info = lapack.dgeqrf(np.vstack([self.r, z]))
        if info != 0:
            raise ValueError(f"QR failed (LAPACK info {info})")
        self.r = np.triu(stacked[: len(z)])
        self.b = self.b + offload_s * z
        self._refresh()


def _triangular_inverse(r: np.ndarray) -> np.ndarray:
    inverse, info = lapack.dtrtri(r, lower=0)
    if info != 0:  # a zero pivot: the prior keeps every diagonal entry positive
        raise ValueError(f"the statistics' square root is singular (LAPACK info {info})")
    return np.asarray(inverse)
