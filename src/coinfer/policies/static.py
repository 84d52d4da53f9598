"""Baselines: a fixed cut (device-only is cut P, edge-only cut 0), the Oracle, and the Oracle
held to μLinUCB's forced-sampling schedule."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coinfer.errors import BadValueError
from coinfer.policies.mulinucb import EXPLORATION, ExplorationRules
from coinfer.policies.types import Action, Context, Feedback


class FixedCut:
    def __init__(self, cut: int, exit: int | None = None) -> None:
        self.action = Action(cut, exit)

    def select(self, ctx: Context) -> Action:
        return self.action

    def update(self, action: Action, fb: Feedback) -> None:
        """A fixed cut learns nothing."""


def fixed_cut(cut: int, last: int) -> FixedCut:
    """``fixed-K`` for a model whose cuts are 0..``last``."""
    if not 0 <= cut <= last:
        raise BadValueError(f"fixed-{cut}: this model's cuts are 0..{last}")
    return FixedCut(cut)


class Oracle:
    """Knows the environment's true expected delay of every cut for the current frame."""

    def __init__(self, expected_delays: Callable[[], np.ndarray | Sequence[float]]) -> None:
        self.expected_delays = expected_delays

    def select(self, ctx: Context) -> Action:
        return Action(int(np.argmin(self.expected_delays())))

    def update(self, action: Action, fb: Feedback) -> None:
        """The Oracle has nothing to learn."""


class ForcedOracle(Oracle):
    """The Oracle, made to offload on μLinUCB's forced-sampling frames (every ⌈T^μ⌉-th frame of
    the epoch, T doubling from 200) at the truly best non-device cut: the least any μLinUCB can
    lose, since forced sampling is part of the algorithm."""

    def __init__(
        self,
        expected_delays: Callable[[], np.ndarray | Sequence[float]],
        rules: ExplorationRules = EXPLORATION,
    ) -> None:
        super().__init__(expected_delays)
        self.rules = rules
        self.horizon = rules.horizon
        self.frame = 0
        self.epoch_start = 0

    def select(self, ctx: Context) -> Action:
        self.frame += 1
        if self.frame > self.horizon:
            self.epoch_start = self.horizon
            self.horizon *= 2
        delays = np.array(self.expected_delays(), dtype=float)
        if (self.frame - self.epoch_start) % self.rules.forced_period(self.horizon) == 0:
            delays[-1] = np.inf
        return Action(int(np.argmin(delays)))
