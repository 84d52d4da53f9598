"""Run a policy in a simulated environment and score it against the Oracle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coinfer.errors import BadValueError
from coinfer.policies.loop import run_loop
from coinfer.policies.types import Policy
from coinfer.sim.env import SimEnv

KEY_FRAME_WEIGHT = 0.5  # frames weighted above this are key frames


@dataclass(frozen=True)
class RunStats:
    """One policy's run: per-frame measured delays, chosen cuts and regrets, and each cut's
    summed true delay over the run (for the best fixed cut in hindsight)."""

    frames: int
    mean_delay_s: float
    key_mean_delay_s: float
    regret_s: float
    oracle_match: float
    cuts: tuple[int, ...]
    delays: tuple[float, ...]
    regrets: tuple[float, ...]
    key_frames: tuple[bool, ...]
    cut_totals_s: tuple[float, ...]

    def mean_delay_from(self, frame: int) -> float:
        """Mean measured delay from ``frame`` on (after a change)."""
        return float(np.mean(self.delays[frame:])) if frame < self.frames else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "mean_delay_s": self.mean_delay_s,
            "key_mean_delay_s": self.key_mean_delay_s,
            "regret_s": self.regret_s,
            "oracle_match": self.oracle_match,
        }


def run_policy(
    env: SimEnv,
    policy: Policy,
    frames: int,
    on_frame: Callable[[int], None] | None = None,
) -> RunStats:
    """The one loop (``policies.loop``) for ``frames`` frames, scored by the environment's
    truth: regret sums the true expected delay of each chosen cut minus the best cut's, frame
    by frame (DESIGN §4); key frames are those the environment weights above 0.5."""
    if frames < 1:
        raise BadValueError(f"frames must be at least 1, got {frames}")
    logged = len(env.regrets)
    totals_before = env.cut_totals.copy()
    tick = (lambda step: on_frame(step.frame)) if on_frame is not None else None
    steps = run_loop(env, policy, frames, on_step=tick)
    delays = [s.feedback.total_s for s in steps]
    keys = [s.context.key_weight > KEY_FRAME_WEIGHT for s in steps]
    regrets = env.regrets[logged:]
    key_delays = [d for d, k in zip(delays, keys, strict=True) if k]
    return RunStats(
        frames=frames,
        mean_delay_s=float(np.mean(delays)),
        key_mean_delay_s=float(np.mean(key_delays)) if key_delays else float("nan"),
        regret_s=float(np.sum(regrets)),
        oracle_match=sum(env.at_best[logged:]) / frames,
        cuts=tuple(s.action.cut for s in steps),
        delays=tuple(delays),
        regrets=tuple(regrets),
        key_frames=tuple(keys),
        cut_totals_s=tuple(float(t) for t in env.cut_totals - totals_before),
    )
