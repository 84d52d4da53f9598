"""The contract between policies and the worlds they act in (simulator or live runtime).

A policy sees a ``Context``, returns an ``Action`` (where to cut, how deep to run), and learns
from the ``Feedback`` the environment measured. It never touches sockets or simulators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from coinfer.graph.types import Cut


@dataclass(frozen=True)
class Action:
    cut: int
    exit: int | None = None


@dataclass(frozen=True)
class Context:
    """What the device may know before a frame: its index, its key-frame weight, the time."""

    frame: int = 0
    key_weight: float = 0.0
    time_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Feedback:
    """What was measured for one frame."""

    device_s: float
    uplink_s: float
    edge_s: float
    downlink_s: float
    bytes_sent: int
    energy_j: float | None = None
    exit: int | None = None
    correct: bool | None = None

    @property
    def total_s(self) -> float:
        return self.device_s + self.uplink_s + self.edge_s + self.downlink_s


class Policy(Protocol):
    def select(self, ctx: Context) -> Action: ...

    def update(self, action: Action, fb: Feedback) -> None: ...


class Environment(Protocol):
    @property
    def cuts(self) -> Sequence[Cut]: ...

    def observe(self) -> Context: ...

    def step(self, action: Action) -> Feedback: ...
