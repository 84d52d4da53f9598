"""Edgent (Li, Zhou, Chen, MECOMM 2018 / IEEE TWC 2019): choose an exit and a cut together.

Static: from the most accurate exit down (the deepest, when depth buys accuracy), take each
exit's fastest cut; the first whose predicted latency meets the requirement wins. If none does,
the fastest option is returned and flagged as a miss. Dynamic: bandwidth states are quantile
bins of a training trace; an offline map gives each state its static configuration; online, the
first throughput monitored says which state the link is in, and a CUSUM change-point detector on
the monitored throughput decides when the state has changed. A rate above everything the trace
held (the top bin is open-ended, but was planned for rates the trace saw) is planned when met,
for the lowest of the recent readings: the map alone would hold a faster link to the plan for a
slower one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from coinfer.errors import BadValueError
from coinfer.graph.types import CutTable
from coinfer.latency.devices import DeviceModel
from coinfer.latency.link import ConstantBandwidth, Link
from coinfer.latency.predict import CutCost, predict_cut_costs, predict_edge_first_costs
from coinfer.policies.types import Action, Context, Feedback

if TYPE_CHECKING:
    from torch import Tensor, nn

    from coinfer.graph.partitioning import Partitioning


ORIENTATIONS = ("device-first", "edge-first")


@dataclass(frozen=True)
class ExitPath:
    """One exit of a multi-exit model: the partitioned path that computes it, and its accuracy."""

    exit: int
    accuracy: float
    part: CutTable


@dataclass(frozen=True)
class EdgentChoice:
    exit: int
    cut: int
    accuracy: float
    cost: CutCost
    meets_requirement: bool


class EdgentPlanner:
    """Static Edgent over the exits' paths, under a given bandwidth."""

    def __init__(
        self,
        exits: Sequence[ExitPath],
        device: DeviceModel,
        edge: DeviceModel,
        rtt_s: float = 0.0,
        edge_load: float = 1.0,
        orientation: str = "device-first",
        include_loading: bool = False,
    ) -> None:
        if orientation not in ORIENTATIONS:
            raise BadValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        if not exits:
            raise BadValueError("Edgent needs at least one exit")
        self.exits = sorted(exits, key=lambda e: e.exit)
        self.device = device
        self.edge = edge
        self.rtt_s = rtt_s
        self.edge_load = edge_load
        self.orientation = orientation
        self.include_loading = include_loading

    def costs(self, path: ExitPath, bandwidth_bps: float) -> list[CutCost]:
        link = Link(ConstantBandwidth(bandwidth_bps), self.rtt_s)
        if self.orientation == "edge-first":
            return predict_edge_first_costs(path.part, self.device, self.edge, link, self.edge_load)
        return predict_cut_costs(
            path.part,
            self.device,
            self.edge,
            link,
            self.edge_load,
            include_loading=self.include_loading,
        )

    def plan(self, bandwidth_bps: float, latency_req_s: float) -> EdgentChoice:
        fastest: EdgentChoice | None = None
        # Most accurate first (deeper first among equals), so accuracy can only rise as the
        # requirement loosens or the bandwidth grows, even where depth does not buy accuracy.
        for path in sorted(self.exits, key=lambda p: (p.accuracy, p.exit), reverse=True):
            best = min(self.costs(path, bandwidth_bps), key=lambda c: c.total_s)
            choice = EdgentChoice(path.exit, best.cut, path.accuracy, best, True)
            if best.total_s <= latency_req_s:
                return choice
            if fastest is None or best.total_s < fastest.cost.total_s:
                fastest = choice
        assert fastest is not None
        return EdgentChoice(fastest.exit, fastest.cut, fastest.accuracy, fastest.cost, False)


def bandwidth_states(samples_bps: Sequence[float], num_states: int = 5) -> np.ndarray:
    """Edges of ``num_states`` equally populated bandwidth bins (quantiles of the samples)."""
    if num_states < 1:
        raise BadValueError("need at least one bandwidth state")
    qs = np.quantile(np.asarray(samples_bps, dtype=float), np.linspace(0, 1, num_states + 1))
    return np.asarray(qs[1:-1])


class CusumDetector:
    """Two-sided CUSUM (Page, 1954) on log-throughput against a reference level: signals when
    the throughput has drifted by more than ``drift`` (in log units) for long enough."""

    def __init__(self, drift: float = 0.2, threshold: float = 1.5) -> None:
        self.drift = drift
        self.threshold = threshold
        self.reference: float | None = None
        self.up = 0.0
        self.down = 0.0

    def reset(self, level_bps: float) -> None:
        self.reference = math.log(level_bps)
        self.up = self.down = 0.0

    def update(self, observed_bps: float) -> bool:
        x = math.log(observed_bps)
        if self.reference is None:
            self.reset(observed_bps)
            return True
        self.up = max(0.0, self.up + x - self.reference - self.drift)
        self.down = max(0.0, self.down + self.reference - x - self.drift)
        return self.up > self.threshold or self.down > self.threshold


class EdgentDynamic:
    """Dynamic Edgent as a Policy. The environment's network monitor reports the throughput it
    sees in ``Context.extra["bandwidth_bps"]``; offloaded frames' measured uplink throughput is
    used as well."""

    def __init__(
        self,
        planner: EdgentPlanner,
        training_bps: Sequence[float],
        latency_req_s: float,
        num_states: int = 5,
        window: int = 5,
        detector: CusumDetector | None = None,
    ) -> None:
        self.planner = planner
        self.latency_req_s = latency_req_s
        self.edges = bandwidth_states(training_bps, num_states)
        samples = np.asarray(training_bps, dtype=float)
        bins = np.digitize(samples, self.edges)
        # A state is planned for the low end of its bin (its 10th percentile): conservative,
        # so a configuration rarely misses the deadline inside its own state.
        self.levels = [
            float(np.quantile(samples[bins == s], 0.1)) if np.any(bins == s) else float("nan")
            for s in range(num_states)
        ]
        self.config_map = {
            s: planner.plan(level, latency_req_s)
            for s, level in enumerate(self.levels)
            if not math.isnan(level)
        }
        self.detector = detector or CusumDetector()
        self.recent: deque[float] = deque(maxlen=window)
        self.ceiling_bps = float(samples.max())
        self.above = num_states  # the state of a rate the training trace never reached
        self.state = self._state_of(float(np.median(samples)))  # until the first reading
        self.monitored = False
        self.changes = 0

    def _state_of(self, bps: float) -> int:
        if bps > self.ceiling_bps:
            self.config_map[self.above] = self.planner.plan(
                min(self.recent, default=bps), self.latency_req_s
            )
            return self.above
        state = int(np.digitize(bps, self.edges))
        # the nearest planned state below (a state the training saw no rate in has no plan);
        # below them all (a rate under every one the training saw, as a constant link's
        # single rate leaves), the lowest planned
        below = [s for s in self.config_map if s <= state]
        return max(below) if below else min(self.config_map)

    def _observe(self, bps: float) -> None:
        self.recent.append(bps)
        if not self.monitored:  # the link's state now, not the training trace's median
            self.monitored = True
            self.state = self._state_of(bps)
            self.detector.reset(bps)
            return
        if self.detector.update(bps):
            level = float(np.exp(np.mean(np.log(self.recent))))
            new = self._state_of(level)
            if new != self.state:
                self.state = new
                self.changes += 1
            self.detector.reset(level)
            self.recent.clear()
            self.recent.append(bps)

    @property
    def current(self) -> EdgentChoice:
        return self.config_map[self.state]

    def select(self, ctx: Context) -> Action:
        monitored = ctx.extra.get("bandwidth_bps")
        if monitored:
            self._observe(monitored)
        choice = self.current
        return Action(choice.cut, choice.exit)

    def update(self, action: Action, fb: Feedback) -> None:
        if fb.bytes_sent > 0 and fb.uplink_s > 0:
            self._observe(8.0 * fb.bytes_sent / fb.uplink_s)


class MultiExitModel(Protocol):
    num_exits: int

    def exit_model(self, exit: int) -> nn.Module: ...


def exit_partitions(
    model: nn.Module, example_inputs: Sequence[Tensor], granularity: str = "layer"
) -> dict[int, Partitioning]:
    """Each exit's partitioned path of a multi-exit model (one with ``num_exits`` and
    ``exit_model(e)``, as BranchyNet's); empty for a model with one exit."""
    from coinfer.graph.partitioning import partition  # torch: only where a model is partitioned

    num_exits = getattr(model, "num_exits", None)
    exit_model = getattr(model, "exit_model", None)
    if not isinstance(num_exits, int) or not callable(exit_model):
        return {}
    return {
        e: partition(exit_model(e), example_inputs, granularity) for e in range(1, num_exits + 1)
    }


def exit_paths(
    model: MultiExitModel,
    example_inputs: Sequence[Tensor],
    accuracies: Sequence[float],
    granularity: str = "layer",
) -> list[ExitPath]:
    """Partition every exit's path of a multi-exit model (one with ``exit_model(e)``)."""
    if len(accuracies) != model.num_exits:
        raise BadValueError(
            f"need one accuracy per exit ({model.num_exits}), got {len(accuracies)}"
        )
    parts = exit_partitions(model, example_inputs, granularity)  # type: ignore[arg-type]
    return [ExitPath(e, float(acc), parts[e]) for e, acc in enumerate(accuracies, start=1)]
