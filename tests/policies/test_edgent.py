"""Edgent: exit and cut chosen together; accuracy never drops as the constraints loosen."""

from __future__ import annotations

import numpy as np
import pytest

from coinfer import partition, zoo
from coinfer.latency.devices import EDGE_PC, RPI3
from coinfer.policies import Action, Context
from coinfer.policies.edgent import (
    CusumDetector,
    EdgentDynamic,
    EdgentPlanner,
    ExitPath,
    bandwidth_states,
)
from coinfer.zoo import BranchyAlexNet

ACCURACY = {1: 0.80, 2: 0.88, 3: 0.93, 4: 0.95, 5: 0.97}


@pytest.fixture(scope="module")
def exits() -> list[ExitPath]:
    model = zoo.create("branchy_alexnet")
    assert isinstance(model, BranchyAlexNet)
    (x,) = zoo.example_inputs("branchy_alexnet")
    return [ExitPath(e, ACCURACY[e], partition(model.exit_model(e), x)) for e in range(1, 6)]


def test_accuracy_never_drops_as_the_requirement_loosens(exits: list[ExitPath]) -> None:
    planner = EdgentPlanner(exits, RPI3, EDGE_PC)
    for bw in (50e3, 400e3, 2e6):
        accs = [planner.plan(bw, req).accuracy for req in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 5.0)]
        assert accs == sorted(accs), bw
    assert planner.plan(2e6, 5.0).exit == 5


def test_accuracy_never_drops_as_bandwidth_rises(exits: list[ExitPath]) -> None:
    planner = EdgentPlanner(exits, RPI3, EDGE_PC)
    for req in (0.1, 0.3, 1.0):
        accs = [planner.plan(bw, req).accuracy for bw in (20e3, 100e3, 500e3, 2e6, 10e6)]
        assert accs == sorted(accs), req


def test_choice_meets_the_requirement_or_is_the_fastest_flagged(exits: list[ExitPath]) -> None:
    planner = EdgentPlanner(exits, RPI3, EDGE_PC)
    ok = planner.plan(1e6, 0.3)
    assert ok.meets_requirement and ok.cost.total_s <= 0.3
    impossible = planner.plan(10e3, 1e-4)
    assert not impossible.meets_requirement
    every = [min(planner.costs(p, 10e3), key=lambda c: c.total_s).total_s for p in exits]
    assert impossible.cost.total_s == pytest.approx(min(every))


def test_edge_first_orientation(exits: list[ExitPath]) -> None:
    planner = EdgentPlanner(exits, RPI3, EDGE_PC, orientation="edge-first")
    costs = planner.costs(exits[-1], 1e6)
    assert costs[0].uplink_s == 0.0 and costs[0].edge_s == 0.0  # cut 0: all on the device
    assert costs[-1].device_s == 0.0  # last cut: the edge runs everything
    assert planner.plan(1e6, 5.0).exit == 5
    with pytest.raises(ValueError, match="orientation"):
        EdgentPlanner(exits, RPI3, EDGE_PC, orientation="sideways")


def test_bandwidth_states_are_quantile_bins() -> None:
    edges = bandwidth_states([float(v) for v in range(1, 101)], 4)
    assert list(edges) == pytest.approx([25.75, 50.5, 75.25])


def test_cusum_signals_a_step_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    det = CusumDetector()
    det.reset(1e6)
    steady = [det.update(1e6 * float(np.exp(rng.normal(0, 0.1)))) for _ in range(200)]
    assert not any(steady)
    after = [det.update(0.2e6) for _ in range(5)]
    assert any(after)


def test_dynamic_edgent_follows_a_bandwidth_drop(exits: list[ExitPath]) -> None:
    planner = EdgentPlanner(exits, RPI3, EDGE_PC)
    training = list(np.geomspace(30e3, 5e6, 200))
    policy = EdgentDynamic(planner, training, latency_req_s=0.3)
    fast = [policy.select(Context(frame=i, extra={"bandwidth_bps": 4e6})) for i in range(20)]
    slow = [policy.select(Context(frame=i, extra={"bandwidth_bps": 40e3})) for i in range(20)]
    assert policy.changes >= 1
    assert ACCURACY[fast[-1].exit or 5] >= ACCURACY[slow[-1].exit or 5]
    assert (fast[-1].exit, fast[-1].cut) != (slow[-1].exit, slow[-1].cut)
    assert planner.plan(40e3, 0.3) == policy.current


def test_dynamic_edgent_on_a_link_faster_than_its_training_trace(exits: list[ExitPath]) -> None:
    """Every state of a slow trace plans a local exit; a link far faster than anything in it
    is planned when met (as static Edgent plans it), and a drop below returns to the map."""
    planner = EdgentPlanner(exits, RPI3, EDGE_PC)
    training = list(np.geomspace(30e3, 200e3, 200))
    policy = EdgentDynamic(planner, training, latency_req_s=0.3)
    assert all(c.cut == planner.plan(200e3, 0.3).cut for c in policy.config_map.values())
    fast = [policy.select(Context(frame=i, extra={"bandwidth_bps": 5e6})) for i in range(5)]
    assert fast[0] == Action(planner.plan(5e6, 0.3).cut, planner.plan(5e6, 0.3).exit)
    assert planner.plan(5e6, 0.3) != planner.plan(200e3, 0.3)  # the map alone would not have it
    slow = [policy.select(Context(frame=i, extra={"bandwidth_bps": 40e3})) for i in range(20)]
    assert policy.changes >= 1 and policy.current == policy.config_map[policy.state]
    assert (slow[-1].cut, slow[-1].exit) != (fast[-1].cut, fast[-1].exit)


def test_dynamic_edgent_trained_on_one_rate_plans_any_rate_below_it(exits: list[ExitPath]) -> None:
    """A constant link (``run --bandwidth``) trains every bin on its one rate: a measured rate
    a little under it falls in a bin with no plan and takes the lowest planned state."""
    planner = EdgentPlanner(exits, RPI3, EDGE_PC)
    policy = EdgentDynamic(planner, [20e6], latency_req_s=0.1)
    assert len(policy.config_map) == 1
    chosen = [policy.select(Context(frame=i, extra={"bandwidth_bps": 19e6})) for i in range(5)]
    (only,) = policy.config_map.values()
    assert all(a == Action(only.cut, only.exit) for a in chosen)
