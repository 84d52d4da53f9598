"""The simulated world of one device: frames back to back, a link that changes, an edge whose
load changes, noise on every measurement, and the truth for the Oracle and for regret."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from coinfer.errors import BadValueError
from coinfer.graph.types import Cut, CutTable
from coinfer.latency.devices import DeviceModel
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCost, CutCostModel
from coinfer.policies.types import Action, Context, Feedback

LoadSchedule = Callable[[float], float]
CLOCKS = ("back-to-back", "camera")


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

    ``clock="back-to-back"`` (DESIGN §1, the ANS testbed): the clock advances by each frame's
    end-to-end delay, or by ``frame_interval_s`` when that is longer. ``clock="camera"``: frame
    k starts at k·``frame_interval_s`` whatever the policy does (no queueing), so every policy
    meets the same link and edge at the same frame — what step-change scenarios need to compare
    policies frame by frame. The link is read at each transfer's own time. Measured components
    carry multiplicative log-normal noise of standard deviation ``noise``; ``expected_delays()``
    is the noiseless truth at the current time; every step logs its regret against it.
    """

    def __init__(
        self,
        part: CutTable,
        device: DeviceModel,
        edge: DeviceModel,
        link: Link,
        edge_load: LoadSchedule | None = None,
        noise: float = 0.0,
        frame_interval_s: float = 0.0,
        key_weights: Iterable[float] | None = None,
        seed: int = 0,
        clock: str = "back-to-back",
        exits: dict[int, CutTable] | None = None,
        correct: np.ndarray | None = None,
    ) -> None:
        if clock not in CLOCKS:
            raise BadValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
        if clock == "camera" and not frame_interval_s > 0:
            raise BadValueError("the camera clock needs a positive frame_interval_s")
        if noise < 0:
            raise BadValueError(f"noise is a standard deviation: >= 0, got {noise}")
        self.part = part
        self.device = device
        self.edge = edge
        self.link = link
        self.edge_load = edge_load or constant_load()
        self.noise = noise
        self.frame_interval_s = frame_interval_s
        self.key_weights = iter(key_weights) if key_weights is not None else None
        self.clock = clock
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.time_s = 0.0
        self.frame = 0
        self._key_weight = 0.2
        self._model = CutCostModel(part, device, edge)
        self._cached: tuple[float, list[CutCost]] | None = None
        # a multi-exit model: each exit's path, and whether exit e answers frame i right
        self.exits = dict(exits or {})
        self._exit_models = {e: CutCostModel(p, device, edge) for e, p in self.exits.items()}
        self.correct = correct
        # the truth at each step, for regret and the best fixed cut in hindsight
        self.regrets: list[float] = []
        self.at_best: list[bool] = []
        self.cut_totals = np.zeros(len(part.cuts))

    @property
    def cuts(self) -> Sequence[Cut]:
        return self.part.cuts

    def costs(self) -> list[CutCost]:
        """Every cut's noiseless cost for a frame starting now."""
        if self._cached is None or self._cached[0] != self.time_s:
            costs = self._model.costs(self.link, self.edge_load(self.time_s), self.time_s)
            self._cached = (self.time_s, costs)
        return self._cached[1]

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
        if action.exit is not None:
            return self._step_exit(action)
        if not 0 <= action.cut <= self.part.last:
            raise BadValueError(f"cut {action.cut} is out of range 0..{self.part.last}")
        truth = self.expected_delays()
        best = int(np.argmin(truth))
        self.regrets.append(float(truth[action.cut] - truth[best]))
        self.at_best.append(action.cut == best)
        self.cut_totals += truth
        cost = self.costs()[action.cut]
        fb = Feedback(
            self._noisy(cost.device_s),
            self._noisy(cost.uplink_s),
            self._noisy(cost.edge_s),
            self._noisy(cost.downlink_s),
            cost.bytes_sent,
            correct=self._correct(None),
        )
        self._advance(fb)
        return fb

    def _step_exit(self, action: Action) -> Feedback:
        """A frame run to an early exit, cut on that exit's path (Edgent): no regret is logged
        (the truth is over the whole model's cuts), the answer is right or not."""
        exit = action.exit
        if exit not in self._exit_models:
            raise BadValueError(
                f"exit {exit!r}: this model's exits are {sorted(self.exits) or 'none'}"
            )
        model = self._exit_models[exit]
        if not 0 <= action.cut <= model.last:
            raise BadValueError(f"cut {action.cut} of exit {exit} is out of range 0..{model.last}")
        cost = model.costs(self.link, self.edge_load(self.time_s), self.time_s)[action.cut]
        correct = self._correct(exit)
        fb = Feedback(
            self._noisy(cost.device_s),
            self._noisy(cost.uplink_s),
            self._noisy(cost.edge_s),
            self._noisy(cost.downlink_s),
            cost.bytes_sent,
            exit=exit,
            correct=correct,
        )
        self._advance(fb)
        return fb

    def _correct(self, exit: int | None) -> bool | None:
        """Whether this frame's answer is right at ``exit`` (None: the whole model, whose
        output is its last exit's)."""
        if self.correct is None:
            return None
        return bool(self.correct[self.frame % len(self.correct), -1 if exit is None else exit - 1])

    def _advance(self, fb: Feedback) -> None:
        self.frame += 1
        if self.clock == "camera":
            self.time_s = self.frame * self.frame_interval_s
        else:
            self.time_s += max(fb.total_s, self.frame_interval_s)
