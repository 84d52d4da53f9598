"""Neurosurgeon: argmin of predicted cost, for latency or device energy, and its online update."""

from __future__ import annotations

import pytest

from coinfer import Partitioning, partition, zoo
from coinfer.latency.devices import EDGE_PC, RPI3, ScaledDevice
from coinfer.latency.energy import RADIOS, EnergyModel
from coinfer.latency.link import Link
from coinfer.latency.predict import predict_cut_costs
from coinfer.policies import Action, Context, Feedback, Neurosurgeon


@pytest.fixture(scope="module")
def vgg_part() -> Partitioning:
    return partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))


def test_cut_moves_toward_the_device_as_bandwidth_drops(vgg_part: Partitioning) -> None:
    edge = ScaledDevice(EDGE_PC, 1.0, "edge")
    cuts = [
        Neurosurgeon(vgg_part, RPI3, edge, bw).plan().cut
        for bw in (100e6, 10e6, 1e6, 100e3, 10e3, 1e3)
    ]
    assert cuts == sorted(cuts)
    assert cuts[0] == 0  # a fast link ships the input
    assert cuts[-1] > cuts[0]


def test_plan_is_the_argmin_and_costs_add_up(vgg_part: Partitioning) -> None:
    plan = Neurosurgeon(vgg_part, RPI3, EDGE_PC, 2e6, rtt_s=0.05).plan()
    assert plan.cost.total_s == min(c.total_s for c in plan.costs)
    for c in plan.costs:
        assert c.total_s == pytest.approx(c.device_s + c.uplink_s + c.edge_s + c.downlink_s)
    last = plan.costs[-1]
    assert last.uplink_s == last.edge_s == last.downlink_s == 0.0
    first = plan.costs[0]
    assert first.device_s == 0.0
    assert first.uplink_s == pytest.approx(3 * 224 * 224 * 4 * 8 / 2e6 + 0.025)


def test_a_loaded_edge_pushes_work_to_the_device() -> None:
    part = partition(zoo.create("branchy_alexnet"), zoo.example_inputs("branchy_alexnet"))
    idle = Neurosurgeon(part, RPI3, EDGE_PC, 1e6, edge_load=1.0).plan()
    busy = Neurosurgeon(part, RPI3, EDGE_PC, 1e6, edge_load=200.0).plan()
    assert idle.cut == 0 and busy.cut == part.last


def test_energy_objective_minimises_device_energy(vgg_part: Partitioning) -> None:
    energy = EnergyModel(3.7, RADIOS["lte"])
    ns = Neurosurgeon(vgg_part, RPI3, EDGE_PC, 3e6, objective="energy", energy=energy)
    plan = ns.plan()
    assert plan.cost.energy_j == min(c.energy_j or 0.0 for c in plan.costs)
    with pytest.raises(ValueError, match="EnergyModel"):
        Neurosurgeon(vgg_part, RPI3, EDGE_PC, 3e6, objective="energy")


def test_bandwidth_estimate_follows_observed_throughput(vgg_part: Partitioning) -> None:
    ns = Neurosurgeon(vgg_part, RPI3, EDGE_PC, 100e6, ewma=0.5)
    assert ns.select(Context()).cut == 0
    slow = Feedback(device_s=0.0, uplink_s=10.0, edge_s=0.1, downlink_s=0.0, bytes_sent=12_500)
    for _ in range(30):  # the link turns out to run at 10 kbit/s
        ns.update(Action(0), slow)
    assert ns.bandwidth_bps == pytest.approx(10e3, rel=1e-3)
    assert ns.select(Context()).cut > 0
    ns.update(Action(vgg_part.last), Feedback(1.0, 0.0, 0.0, 0.0, 0))
    assert ns.bandwidth_bps == pytest.approx(10e3, rel=1e-3)  # on-device frames teach nothing
    static = Neurosurgeon(vgg_part, RPI3, EDGE_PC, 100e6, adaptive=False)
    for _ in range(30):
        static.update(Action(0), slow)
    assert static.bandwidth_bps == 100e6 and static.select(Context()).cut == 0  # plan kept


def test_trace_link_is_read_when_the_transfer_happens() -> None:
    from coinfer.latency.link import TraceBandwidth

    part = partition(zoo.create("mlp", depth=2, width=256), zoo.example_inputs("mlp", width=256))
    trace = TraceBandwidth((0.0, 1.0), (1e3, 1e9), loop=False)
    early = predict_cut_costs(part, RPI3, EDGE_PC, Link(trace), start=0.0)
    late = predict_cut_costs(part, RPI3, EDGE_PC, Link(trace), start=5.0)
    assert early[0].uplink_s > 100 * late[0].uplink_s
