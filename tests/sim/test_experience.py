"""Offline experience (warm start) and the fleet's policies: exits, files, groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coinfer import partition, zoo
from coinfer.latency.devices import EDGE_PC, resolve_device
from coinfer.latency.link import ConstantBandwidth, Link
from coinfer.policies.bandits import TunedMuLinUCB
from coinfer.policies.experience import Experience, collect_experience, exit_cuts
from coinfer.policies.fedlinucb import FederatedStats
from coinfer.sim.env import SimEnv
from coinfer.sim.fleet_policies import FLEET_POLICIES, make_fleet_policies
from coinfer.systems.cans import worlds as fleet_worlds


def test_exit_points_follow_the_pooling_stages() -> None:
    vgg = partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))
    assert [vgg.cuts[i].name for i in exit_cuts(vgg)] == [
        "pool1",
        "pool2",
        "pool3",
        "pool4",
        "pool5",
    ]
    mlp = partition(zoo.create("mlp"), zoo.example_inputs("mlp"))  # no pooling: spread out
    exits = exit_cuts(mlp)
    assert exits and all(0 < c < mlp.last for c in exits)


def test_experience_is_measured_saved_and_loaded(tmp_path: Path) -> None:
    part = partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))
    link = Link(ConstantBandwidth(4e6), 0.02)
    env = SimEnv(part, resolve_device("edge-pc/8"), EDGE_PC, link, noise=0.0)
    exp = collect_experience(env, exit_cuts(part), 10, "vgg16", "edge-pc/8", "edge-pc", "test")
    assert [r.cut for r in exp.records] == [3, 6, 10, 14, 18] * 2
    first = exp.records[0]
    assert first.bytes_sent == part.cuts[3].boundary_bytes
    assert first.link_bps == pytest.approx(4e6, rel=0.01)  # the rate the upload achieved (+RTT)
    path = exp.save(tmp_path / "exp" / "device-000.json")
    assert Experience.load(path) == exp
    with pytest.raises(ValueError, match="cannot warm-start 'tiny_yolov2'"):
        exp.check_fits("tiny_yolov2", 15)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad JSON"):
        Experience.load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a coinfer-experience/1 file"):
        Experience.load(bad)
    with pytest.raises(ValueError, match="no such experience file"):
        Experience.load(tmp_path / "missing.json")


def test_policies_group_devices_as_their_names_say(tmp_path: Path) -> None:
    sim = fleet_worlds.build_sim(4, 2, seed=0)
    experiences = fleet_worlds.load_or_make_experience(4, 2, 0, tmp_path)
    assert len(list(tmp_path.glob("device-*.json"))) == 4

    def groups(name: str) -> int:
        policies, _ = make_fleet_policies(name, sim, experiences)
        stats = [p.stats for p in policies if isinstance(p, TunedMuLinUCB)]
        assert len(stats) == 4
        if not all(isinstance(s, FederatedStats) for s in stats):
            return 0
        return len({id(s.group) for s in stats if isinstance(s, FederatedStats)})

    assert groups("noncoop") == 0
    assert groups("fedlinucb") == groups("fedlinucb-w") == 1
    assert groups("fedlinucb-d") == groups("fedlinucb-dw") == 2  # pi4-vgg16, pi4-yolo
    _, cold = make_fleet_policies("fedlinucb-d", sim, experiences)
    warm_policies, warm = make_fleet_policies("fedlinucb-dw", sim, experiences)
    assert cold.messages == 0 and warm.messages == 8  # 4 warm-start uploads, 4 downloads
    warm_stats = warm_policies[0].stats  # type: ignore[attr-defined]
    assert isinstance(warm_stats, FederatedStats)
    assert warm_stats.view.experience_count == 2 * 30  # the group's experience, downloaded
    assert np.allclose(warm_stats.a, np.eye(8))  # in the estimate, not in the confidence
    assert not np.allclose(warm_stats.theta, 0.0)
    with pytest.raises(ValueError, match="give one per device"):
        make_fleet_policies("fedlinucb-dw", sim, None)
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_fleet_policies("nope", sim)
    assert set(FLEET_POLICIES) >= {"noncoop", "fedlinucb", "fedlinucb-d", "fedlinucb-dw"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_warm_start_no_longer_traps_the_group_on_the_device(seed: int, tmp_path: Path) -> None:
    """Issue 5's trap case: two VGG16 boards on 3G x4, the 7-feature learner. A warm start from
    records at the pooling cuts alone held the group on the device in 2 of 3 seeds (5.97 s,
    device-only's delay); with records at the input cut too it offloads like the cold group."""
    from coinfer.policies.fedlinucb import Federation
    from coinfer.systems.cans.fleet import FleetConfig, simulate_fleet

    policies = ("device-only", "fedlinucb-d", "fedlinucb-dw")
    config = FleetConfig(
        2, 1, "3g", policies, 300, seed, Federation(link_feature=False), 4.0, experience=tmp_path
    )
    rows = {r["policy"]: r["mean_latency_s"] for r in simulate_fleet(config)}
    assert 0 in fleet_worlds.load_or_make_experience(2, 1, seed, tmp_path, 4.0)[0].exit_cuts
    assert rows["fedlinucb-dw"] < 0.5 * rows["device-only"]
    assert rows["fedlinucb-dw"] < 1.1 * rows["fedlinucb-d"]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_warm_start_is_never_worse_than_none_in_the_prototype_world(
    seed: int, tmp_path: Path
) -> None:
    """Issue 15's bar: the experience is a prior on the estimate and the confidence, so the
    warm pair does not pay for the exploration its records settle (the cold pair tries the
    12.8 MB cut once per device; the warm one goes where the Oracle goes)."""
    from coinfer.policies.fedlinucb import Federation
    from coinfer.systems.cans.fleet import FleetConfig, simulate_fleet

    policies = ("oracle", "fedlinucb-d", "fedlinucb-dw")
    fed = Federation(link_feature=False)
    runs = simulate_fleet(
        FleetConfig(2, None, "prototype", policies, 300, seed, fed, experience=tmp_path)
    )
    rows = {r["policy"]: r["mean_latency_s"] for r in runs}
    assert rows["fedlinucb-dw"] <= rows["fedlinucb-d"]
    assert rows["fedlinucb-dw"] <= 1.01 * rows["oracle"]
