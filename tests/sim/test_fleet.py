"""Many devices, one edge: processor sharing, the shared uplink, truth, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from coinfer import Partitioning, partition, zoo
from coinfer.latency.devices import EDGE_PC, resolve_device
from coinfer.latency.link import ConstantBandwidth, Link
from coinfer.latency.predict import CutCostModel, cut_totals
from coinfer.policies import Action
from coinfer.policies.static import FixedCut
from coinfer.sim.fleet import DeviceType, FleetDevice, FleetSim
from coinfer.sim.sharing import SharedResource, water_fill


@pytest.fixture(scope="module")
def kind() -> DeviceType:
    part: Partitioning = partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))
    return DeviceType("pi4-vgg16", "vgg16", part, resolve_device("edge-pc/8"), EDGE_PC)


def _link(bps: float = 20e6) -> Link:
    return Link(ConstantBandwidth(bps), rtt_s=0.02)


def test_water_filling_caps_and_shares() -> None:
    assert water_fill(np.array([1.0, 1.0, 1.0]), 2.0) == pytest.approx([2 / 3] * 3)
    assert water_fill(np.array([1.0, 1.0]), 3.0) == pytest.approx([1.0, 1.0])  # caps bind
    rates = water_fill(np.array([1.0, 5.0, 5.0]), 7.0)  # the small cap frees capacity
    assert rates == pytest.approx([1.0, 3.0, 3.0]) and rates.sum() == pytest.approx(7.0)


def test_processor_sharing_finishes_jobs_when_it_should() -> None:
    edge = SharedResource(3, capacity=1.0)
    edge.add(0, 2.0, 1.0, t=0.0)
    edge.add(1, 2.0, 1.0, t=0.0)  # two jobs at half speed each: both done at t = 4
    assert edge.next_completion()[0] == pytest.approx(4.0)
    edge.advance(1.0)
    edge.add(2, 0.25, 1.0, t=1.0)  # a third short job: a third of the edge, done at t = 1.75
    t, job = edge.next_completion()
    assert (t, job) == (pytest.approx(1.75), 2)
    edge.advance(t)
    edge.remove(job)
    assert edge.remaining[:2] == pytest.approx([2.0 - 0.5 - 0.25] * 2)
    with pytest.raises(ValueError, match="already running"):
        edge.add(0, 1.0, 1.0, t)


def test_one_device_measures_what_the_latency_model_predicts(kind: DeviceType) -> None:
    sim = FleetSim([FleetDevice(kind, _link())], noise=0.0)
    truth = cut_totals(CutCostModel(kind.part, kind.device, kind.edge), _link())
    for cut in (0, 10, kind.last):
        run = sim.run([FixedCut(cut)], 3)
        assert run.delays[0] == pytest.approx([truth[cut]] * 3)
        assert run.regrets[0] == pytest.approx([truth[cut] - truth.min()] * 3)
        assert run.starts[0, 1] == pytest.approx(truth[cut])  # frames back to back


def test_edge_time_grows_with_concurrent_jobs_and_slots(kind: DeviceType) -> None:
    model = CutCostModel(kind.part, kind.device, kind.edge)
    pair = [FleetDevice(kind, _link()), FleetDevice(kind, _link())]
    alone = FleetSim(pair[:1], noise=0.0).run([FixedCut(0)], 1).delays[0, 0]
    shared = FleetSim(pair, edge_slots=1, noise=0.0).run([FixedCut(0), FixedCut(0)], 1)
    # both uploads end together, then the two back halves share one edge: twice as long
    assert shared.delays[:, 0] == pytest.approx([alone + model.edge_s[0]] * 2)
    two_slots = FleetSim(pair, edge_slots=2, noise=0.0).run([FixedCut(0), FixedCut(0)], 1)
    assert two_slots.delays[:, 0] == pytest.approx([alone] * 2)


def test_a_shared_uplink_splits_its_capacity(kind: DeviceType) -> None:
    pair = [FleetDevice(kind, _link(10e6)), FleetDevice(kind, _link(10e6))]
    own = FleetSim(pair, edge_slots=2, noise=0.0).run([FixedCut(0), FixedCut(0)], 1)
    shared = FleetSim(pair, edge_slots=2, shared_uplink_bps=10e6, noise=0.0)
    run = shared.run([FixedCut(0), FixedCut(0)], 1)
    upload = 8.0 * kind.part.cuts[0].boundary_bytes / 10e6
    assert run.delays[:, 0] == pytest.approx(own.delays[:, 0] + upload)  # half the rate each


def test_deterministic_for_a_seed_and_noisy_across_seeds(kind: DeviceType) -> None:
    devices = [FleetDevice(kind, _link(2e6 * (i + 1))) for i in range(3)]

    def delays(seed: int) -> np.ndarray:
        sim = FleetSim(devices, noise=0.1, seed=seed)
        return sim.run([FixedCut(0), FixedCut(18), FixedCut(0)], 20).delays

    assert np.array_equal(delays(1), delays(1))
    assert not np.array_equal(delays(1), delays(2))


def test_bad_fleets_and_actions_are_refused(kind: DeviceType) -> None:
    with pytest.raises(ValueError, match="at least one device"):
        FleetSim([])
    with pytest.raises(ValueError, match="one slot"):
        FleetSim([FleetDevice(kind, _link())], edge_slots=0)
    sim = FleetSim([FleetDevice(kind, _link())])
    with pytest.raises(ValueError, match="one policy per device"):
        sim.run([FixedCut(0), FixedCut(0)], 1)

    class Wild(FixedCut):
        def select(self, ctx: object) -> Action:
            return Action(99)

    with pytest.raises(ValueError, match=r"cut 99 is out of range 0\.\.22"):
        sim.run([Wild(0)], 1)
