"""Baselines: a fixed cut (device-only is cut P, edge-only cut 0) and the Oracle."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coinfer.policies.types import Action, Context, Feedback


class FixedCut:
    def __init__(self, cut: int, exit: int | None = None) -> None:
        self.action = Action(cut, exit)

    def select(self, ctx: Context) -> Action:
        return self.action

    def update(self, action: Action, fb: Feedback) -> None:
        """A fixed cut learns nothing."""


class Oracle:
    """Knows the environment's true expected delay of every cut for the current frame."""

    def __init__(self, expected_delays: Callable[[], np.ndarray | Sequence[float]]) -> None:
        self.expected_delays = expected_delays

    def select(self, ctx: Context) -> Action:
        return Action(int(np.argmin(self.expected_delays())))

    def update(self, action: Action, fb: Feedback) -> None:
        """The Oracle has nothing to learn."""
