"""The simulated world of one device: frames back to back, a link that changes, an edge whose
load changes, noise on every measurement, and the truth for the Oracle and for regret."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from coinfer.graph.partition import Partitioning
from coinfer.graph.types import Cut
from coinfer.latency.devices import DeviceModel
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCost, predict_cut_costs
from coinfer.policies.types import Action, Context, Feedback

LoadSchedule = Callable[[float], float]


def constant_load(factor: float = 1.0) -> LoadSchedule:
    return lambda _t: factor


def step_load(steps: Sequence[tuple[float, float]]) -> LoadSchedule:
    """Edge slowdown factor ``k`` from each ``(time_s, k)`` on (1 = the edge as profiled)."""
    times = [t for t, _ in steps]

    def load(t: float) -> float:
        i = int(np.searchsorted(times, t, side="right")) - 1
        return steps[max(i, 0)][1]

    return load


class SimEnv:
    """An Environment: ``observe()`` then ``step(action)``, frame after frame.

    The clock advances by each frame's end-to-end delay, or by ``frame_interval_s`` when that
    is longer (a real-time source); the link is read at each transfer's own time. Measured
    components carry multiplicative log-normal noise of standard deviation ``noise``;
    ``expected_delays()`` is the noiseless truth at the current time.
    """

    def __init__(
        self,
        part: Partitioning,
        device: DeviceModel,
        edge: DeviceModel,
        link: Link,
        edge_load: LoadSchedule | None = None,
        noise: float = 0.0,
        frame_interval_s: float = 0.0,
        key_weights: Iterator[float] | None = None,
        seed: int = 0,
    ) -> None:
        self.part = part
        self.device = device
        self.edge = edge
        self.link = link
        self.edge_load = edge_load or constant_load()
        self.noise = noise
        self.frame_interval_s = frame_interval_s
        self.key_weights = key_weights
        self.rng = np.random.default_rng(seed)
        self.time_s = 0.0
        self.frame = 0
        self._key_weight = 0.2

    @property
    def cuts(self) -> Sequence[Cut]:
        return self.part.cuts

    def costs(self) -> list[CutCost]:
        return predict_cut_costs(
            self.part, self.device, self.edge, self.link, self.edge_load(self.time_s),
            start=self.time_s,
        )  # fmt: skip

    def expected_delays(self) -> np.ndarray:
        return np.array([c.total_s for c in self.costs()])

    def observe(self) -> Context:
        if self.key_weights is not None:
            self._key_weight = next(self.key_weights, 0.2)
        return Context(
            frame=self.frame,
            key_weight=self._key_weight,
            time_s=self.time_s,
            extra={"bandwidth_bps": self.link.uplink.at(self.time_s)},
        )

    def _noisy(self, value: float) -> float:
        if self.noise <= 0 or value == 0:
            return value
        return float(value * self.rng.lognormal(0.0, self.noise))

    def step(self, action: Action) -> Feedback:
        if not 0 <= action.cut <= self.part.last:
            raise ValueError(f"cut {action.cut} is out of range 0..{self.part.last}")
        cost = self.costs()[action.cut]
        fb = Feedback(
            self._noisy(cost.device_s), self._noisy(cost.uplink_s), self._noisy(cost.edge_s),
            self._noisy(cost.downlink_s), cost.bytes_sent, exit=action.exit,
        )  # fmt: skip
        self.time_s += max(fb.total_s, self.frame_interval_s)
        self.frame += 1
        return fb
