"""Run a policy in a simulated environment and score it against the Oracle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coinfer.policies.types import Policy
from coinfer.sim.env import SimEnv


@dataclass(frozen=True)
class RunStats:
    frames: int
    mean_delay_s: float
    key_mean_delay_s: float
    regret_s: float
    oracle_match: float
    cuts: tuple[int, ...]
    delays: tuple[float, ...]


def run_policy(
    env: SimEnv,
    policy: Policy,
    frames: int,
    on_frame: Callable[[int], None] | None = None,
) -> RunStats:
    """Regret sums the true expected delay of each chosen cut minus the best cut's, frame by
    frame (DESIGN §4); key frames are those the environment weights above 0.5."""
    delays, cuts, regret, matches, key_delays = [], [], 0.0, 0, []
    for i in range(frames):
        ctx = env.observe()
        truth = env.expected_delays()
        action = policy.select(ctx)
        regret += float(truth[action.cut] - truth.min())
        matches += int(action.cut == int(np.argmin(truth)))
        fb = env.step(action)
        policy.update(action, fb)
        delays.append(fb.total_s)
        cuts.append(action.cut)
        if ctx.key_weight > 0.5:
            key_delays.append(fb.total_s)
        if on_frame is not None:
            on_frame(i)
    return RunStats(
        frames,
        float(np.mean(delays)),
        float(np.mean(key_delays)) if key_delays else float("nan"),
        regret,
        matches / frames,
        tuple(cuts),
        tuple(delays),
    )
