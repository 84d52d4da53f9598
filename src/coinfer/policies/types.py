"""The contract between policies and the worlds they act in (simulator or live runtime).

A policy sees a ``Context``, returns an ``Action`` (where to cut, how deep to run), and learns
from the ``Feedback`` the environment measured. It never touches sockets or simulators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from coinfer.graph.types import Cut
from coinfer.latency.predict import Breakdown


@dataclass(frozen=True)
class Action:
    cut: int
    exit: int | None = None


@dataclass(frozen=True)
class Context:
    """What the device may know before a decision: the frame's index, its key-frame weight and
    the time; in a stage-wise world (online splitting by optimal stopping) also the ``stage``
    (layers already run on the device) and the channel's power ``gain`` in that stage. ``extra``
    holds what a world's monitor reports (``bandwidth_bps``: the uplink rate it sees now)."""

    frame: int = 0
    key_weight: float = 0.0
    time_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    stage: int | None = None
    gain: float | None = None


@dataclass(frozen=True)
class Feedback(Breakdown):
    """What was measured for one frame: the time breakdown, and the exit taken and whether
    the answer was right, where known."""

    exit: int | None = None
    correct: bool | None = None

    @classmethod
    def of(cls, cost: Breakdown, exit: int | None = None, correct: bool | None = None) -> Feedback:
        """Feedback carrying a (predicted or measured) breakdown, as simulators report it."""
        return cls(
            cost.device_s,
            cost.uplink_s,
            cost.edge_s,
            cost.downlink_s,
            cost.bytes_sent,
            cost.energy_j,
            exit,
            correct,
        )


def plausible(fb: Feedback) -> bool:
    """Every measured time, size and energy finite and non-negative: the least a measurement
    must be before any policy learns from it (a NaN or a negative time would poison a learner's
    statistics for good)."""
    values = [fb.device_s, fb.uplink_s, fb.edge_s, fb.downlink_s, fb.bytes_sent]
    if fb.energy_j is not None:
        values.append(fb.energy_j)
    return all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        for v in values
    )


class Policy(Protocol):
    def select(self, ctx: Context) -> Action: ...

    def update(self, action: Action, fb: Feedback) -> None: ...


class Environment(Protocol):
    """A world a policy acts in, frame after frame (``coinfer.policies.loop`` drives it).

    ``step`` returns the frame's Feedback; a stage-wise world returns None while the frame goes
    on (the action was "not yet": compute one more layer), and the loop observes the next stage
    and asks the policy again, so a frame is one or more decisions and exactly one Feedback."""

    @property
    def cuts(self) -> Sequence[Cut]: ...

    def observe(self) -> Context: ...

    def step(self, action: Action) -> Feedback | None: ...
