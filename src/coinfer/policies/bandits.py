"""Contextual bandits for cut selection: LinUCB and coinfer's tuned μLinUCB (ANS, Zhang, Chen,
Xu, WWW 2021; the authors' own μLinUCB is ``policies.mulinucb``).

Both model the edge offloading delay of cut p (upload + edge compute) as x_pᵀθ, where x_p is
the cut's feature vector (the ANS 7-vector, each feature scaled by its maximum over the cuts),
plus the reply's time (the same at every cut, averaged apart), and add the device's front delay
d_f(p), which the device knows from profiling. They
pick argmin_p d_f(p) + x_pᵀθ̂ − α·(exploration bonus) and learn only from offloaded frames:
the on-device cut P sends nothing, so x_P = 0 and its delay is d_f(P), known.

Delays enter the model in units of ``delay_unit_s`` (default 0.1 s). The paper leaves the unit
open, yet it sets how much the learner explores: α(T) ≈ 6.5 multiplies a confidence width in
those units, while the estimation errors it must cover scale with the delays. In milliseconds
the bonus is a rounding error, so only forced sampling explores, always at the one cut the
estimates favour, and a stale estimate can trap the learner (tiny-YOLOv2 stays on the device
after the edge recovers). In seconds the bonus explores so much that the discounted learner
loses 15-32% in a stationary world. 0.1 s was the best over the ANS scenarios
(``coinfer experiment ans`` writes the whole sensitivity table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from coinfer.graph.types import ANS_FEATURES, Cut
from coinfer.policies.mulinucb import EXPLORATION, ExplorationRules
from coinfer.policies.types import Action, Context, Feedback


def scaled_features(cuts: Sequence[Cut], names: tuple[str, ...] = ANS_FEATURES) -> np.ndarray:
    """P+1 x d matrix of the cuts' features, each column divided by its maximum (so in [0, 1])."""
    x = np.array([c.feature_vector(names) for c in cuts], dtype=float)
    top = x.max(axis=0)
    top[top == 0] = 1.0
    return np.asarray(x / top)


class Statistics(Protocol):
    """What a learner needs of its ridge statistics: A⁻¹ and θ̂ to score, and to learn."""

    a: np.ndarray
    a_inv: np.ndarray
    b: np.ndarray

    @property
    def theta(self) -> np.ndarray: ...

    def update(self, x: np.ndarray, y: float) -> None: ...

    def decay(self) -> None: ...


class RidgeStats:
    """A = λI + Σ x xᵀ and b = Σ y x, with A⁻¹ kept by Sherman–Morrison (O(d²) per update).

    With ``discount`` γ < 1 (discounted LinUCB, for non-stationary links and edges) every
    frame ages the evidence: A ← γA + (1 − γ)·λ_γ·I, b ← γb, before a new x xᵀ and y x are
    added. The prior then settles at λ_γ = λ(1 − γ): a window of ~1/(1 − γ) frames holds far
    less evidence than a stationary run, and the paper's λ = 1 would shrink the estimates of
    cuts with small feature vectors (sampled one frame in F) far below their true delay. The
    (1 − γ)λ_γ·I term is not rank one, so the d × d inverse is recomputed (d = 7: microseconds).
    """

    def __init__(self, dim: int, lam: float = 1.0, discount: float = 1.0) -> None:
        if not 0 < discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        if not lam > 0:
            raise ValueError(f"lam must be positive, got {lam}")
        self.lam = lam
        self.discount = discount
        self.floor = lam * (1 - discount) if discount < 1 else lam
        self.a = lam * np.eye(dim)
        self.a_inv = np.eye(dim) / lam
        self.b = np.zeros(dim)
        self._eye = np.eye(dim)

    def _age(self) -> None:
        g = self.discount
        self.a = g * self.a + (1 - g) * self.floor * self._eye
        self.b = g * self.b

    def decay(self) -> None:
        """Age the evidence by one frame (a no-op without a discount)."""
        if self.discount < 1.0:
            self._age()
            self.a_inv = np.asarray(np.linalg.inv(self.a), dtype=float)

    def update(self, x: np.ndarray, y: float) -> None:
        if self.discount < 1.0:
            self._age()
            self.a += np.outer(x, x)
            self.b += y * x
            self.a_inv = np.asarray(np.linalg.inv(self.a), dtype=float)
            return
        self.a += np.outer(x, x)
        self.b += y * x
        ax = self.a_inv @ x
        self.a_inv -= np.outer(ax, ax) / (1.0 + x @ ax)

    @property
    def theta(self) -> np.ndarray:
        return np.asarray(self.a_inv @ self.b)


class _DiscountedMean:
    """A mean whose old values fade by ``discount`` per frame (a plain mean when it is 1)."""

    def __init__(self, discount: float) -> None:
        self.discount = discount
        self.total = 0.0
        self.weight = 0.0

    def add(self, value: float) -> None:
        self.decay()
        self.total += value
        self.weight += 1.0

    def decay(self) -> None:
        self.total *= self.discount
        self.weight *= self.discount

    @property
    def value(self) -> float:
        return self.total / self.weight if self.weight else 0.0


class LinUCB:
    """Plain LinUCB: s_p = d_f(p) + x_pᵀθ̂ − α‖x_p‖_{A⁻¹}."""

    def __init__(
        self,
        cuts: Sequence[Cut],
        device_front_s: Sequence[float],
        alpha: float = 1.0,
        lam: float = 1.0,
        discount: float = 1.0,
        delay_unit_s: float = 0.1,
        link_feature: bool = False,
        stats: Statistics | None = None,
    ) -> None:
        if len(device_front_s) != len(cuts):
            raise ValueError("need the device's front delay of every cut")
        if not delay_unit_s > 0:
            raise ValueError(f"delay_unit_s must be positive, got {delay_unit_s}")
        self.x = scaled_features(cuts)
        self.x[-1] = 0.0  # on the device nothing reaches the edge: d(P) = d_f(P), known
        self.unit = delay_unit_s
        self.front = np.asarray(device_front_s, dtype=float) / delay_unit_s
        self.alpha = alpha
        # Beyond the paper: an 8th feature, the upload time of each cut's boundary at the link
        # rate the device last measured (in delay units). The 7 static features cannot tell a
        # fast link from a slow one, so on a fluctuating link the learner can do no better than
        # the best fixed cut; with it, the model follows the link (DESIGN §1).
        self.link_feature = link_feature
        self.link_bps: float | None = None
        self.boundary_bits = 8.0 * np.array([c.boundary_bytes for c in cuts], dtype=float)
        self.boundary_bits[-1] = 0.0
        if link_feature:
            self.x = np.hstack([self.x, np.zeros((len(cuts), 1))])
        # ``stats`` lets statistics live elsewhere (a federation's, shared by a group of devices)
        self.stats: Statistics = stats or RidgeStats(self.x.shape[1], lam, discount)
        self.last = len(cuts) - 1
        # The reply (the model's output coming back) takes the same time whatever the cut, and
        # the 7 features have no intercept to carry it: a linear fit then blames it on
        # whichever feature the sampled cuts share (edge layer counts) and mispredicts every
        # other cut. The device times the reply itself, so it is averaged apart (discounted
        # like the rest) and added to every offloading cut's estimate.
        self.reply_mean = _DiscountedMean(discount)
        self.offload = np.ones(len(cuts))
        self.offload[-1] = 0.0

    @staticmethod
    def dimension(link_feature: bool = False) -> int:
        return len(ANS_FEATURES) + int(link_feature)

    @property
    def reply(self) -> float:
        return self.reply_mean.value

    def feature(self, cut: int, link_bps: float | None = None) -> np.ndarray:
        """Cut ``cut``'s feature vector as the learner sees it when the device last measured
        ``link_bps`` on its uplink (the link feature is 0 before any measurement)."""
        x = self.x[cut].copy()
        if self.link_feature:
            x[-1] = self.boundary_bits[cut] / link_bps / self.unit if link_bps else 0.0
        return x

    def exploration_scale(self, ctx: Context) -> float:
        """Multiplies xᵀA⁻¹x under the square root of the bonus (1 for plain LinUCB)."""
        return 1.0

    def scores(self, ctx: Context) -> np.ndarray:
        if self.link_feature and self.link_bps:
            self.x[:, -1] = self.boundary_bits / self.link_bps / self.unit
        quad = np.einsum("pi,ij,pj->p", self.x, self.stats.a_inv, self.x)
        widths = np.sqrt(self.exploration_scale(ctx) * quad)
        estimate = self.x @ self.stats.theta + self.reply * self.offload
        return np.asarray(self.front + estimate - self.alpha * widths)

    def select(self, ctx: Context) -> Action:
        return Action(int(np.argmin(self.scores(ctx))))

    def update(self, action: Action, fb: Feedback) -> None:
        if action.cut != self.last:  # the on-device cut teaches nothing about the edge
            self.reply_mean.add(fb.downlink_s / self.unit)
            if fb.bytes_sent > 0 and fb.uplink_s > 0:  # the rate this frame's upload achieved
                self.link_bps = 8.0 * fb.bytes_sent / fb.uplink_s
            # The learner learns from the frame's features at the rate its upload achieved, not
            # at the rate it guessed from the frame before: the link feature is then this
            # upload's time, the fit puts the upload on it and only the edge's time on the
            # static features. (With the guessed rate, a first offload — no rate measured yet,
            # link feature 0 — teaches the static features that the edge is as slow as the link.)
            x = self.feature(action.cut, self.link_bps) if self.link_feature else self.x[action.cut]
            self.stats.update(x, (fb.uplink_s + fb.edge_s) / self.unit)
        else:  # evidence ages with time, not with offloads: a device frame teaches nothing new
            self.reply_mean.decay()
            self.stats.decay()


class TunedMuLinUCB(LinUCB):
    """coinfer's μLinUCB (DESIGN §4, second variant): the rules of ANS — key-frame weighted
    exploration, α(T) from the horizon with the doubling trick, forced sampling of a non-device
    cut every F-th frame — on LinUCB's numerics here: features scaled to [0, 1], a delay unit,
    a λI prior, the reply averaged apart, optionally a discount and the link feature. The
    authors' own algorithm is ``coinfer.policies.mulinucb.MuLinUCB``."""

    def __init__(
        self,
        cuts: Sequence[Cut],
        device_front_s: Sequence[float],
        lam: float = 1.0,
        discount: float = 1.0,
        rules: ExplorationRules = EXPLORATION,
        delay_unit_s: float = 0.1,
        link_feature: bool = False,
        stats: Statistics | None = None,
    ) -> None:
        super().__init__(
            cuts, device_front_s, 0.0, lam, discount, delay_unit_s, link_feature, stats
        )
        self.rules = rules
        self.c_x = float(max(np.sum(self.x**2, axis=1)))  # over the 7 static features
        self.horizon = rules.horizon
        self.frame = 0  # frames seen, over all epochs
        self.epoch_start = 0  # the frame the current horizon's epoch began after
        self._recompute()

    def _recompute(self) -> None:
        self.alpha = self.rules.alpha(self.horizon, self.c_x, self.x.shape[1])
        self.forced_period = self.rules.forced_period(self.horizon)

    def exploration_scale(self, ctx: Context) -> float:
        """1 − L_t: key frames (L_t = 0.8) exploit, similar frames (0.2) explore."""
        return 1.0 - min(max(ctx.key_weight, 0.0), 1.0)

    def select(self, ctx: Context) -> Action:
        self.frame += 1
        if self.frame > self.horizon:  # doubling trick: T doubles when passed; A and b are kept
            self.epoch_start = self.horizon
            self.horizon *= 2
            self._recompute()
        scores = self.scores(ctx)
        if (self.frame - self.epoch_start) % self.forced_period == 0:
            scores[self.last] = np.inf  # forced sampling: never trapped on the device
        return Action(int(np.argmin(scores)))
