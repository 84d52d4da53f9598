"""One loop, one registry, both worlds: the same policy object learns in the simulator and
keeps learning live; every registered policy runs from the CLI in every world it claims and
says why where it cannot; Edgent runs to an exit over the wire; the stopping rules run stage by
stage over a fading uplink against a real edge."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coinfer.assembly import DeviceSetup, device_setup, load_model
from coinfer.cli import app
from coinfer.device.client import DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.inputs import live_frames
from coinfer.device.live_env import LiveEnv
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import ProcessServer, zoo_store
from coinfer.edge.store import ModelStore
from coinfer.latency.link import Link
from coinfer.policies import registry
from coinfer.policies.bandits import TunedMuLinUCB
from coinfer.policies.fedlinucb import LEARNERS, WARM_POLICIES
from coinfer.policies.loop import run_loop
from coinfer.policies.types import Action
from coinfer.sim.env import SimEnv
from coinfer.wire.protocol import ErrorCode, ProtocolError

MODELS = ("alexnet", "branchy_alexnet", "mlp")


@pytest.fixture(scope="module")
def edge() -> Iterator[ProcessServer]:
    with ProcessServer(zoo_store, MODELS, ServerOptions(federation=True)) as server:
        yield server


@pytest.fixture(scope="module")
def alexnet() -> DeviceSetup:
    return device_setup(load_model("alexnet"), "edge-pc*4", "edge-pc")


def test_one_policy_object_learns_in_the_simulator_then_keeps_learning_live(
    alexnet: DeviceSetup, edge: ProcessServer
) -> None:
    link = Link.constant(20e6, 0.02)
    policy = registry.create("mulinucb-link", alexnet.knowledge("sim", link))
    assert isinstance(policy, TunedMuLinUCB)
    sim = SimEnv(alexnet.model.part, alexnet.device, alexnet.edge, link, noise=0.1)
    steps = run_loop(sim, policy, 40)
    assert sum(s.action.cut < alexnet.model.part.last for s in steps) >= 5  # it offloaded
    learned_a, learned_b = policy.stats.a.copy(), policy.stats.b.copy()
    assert not np.allclose(learned_a, np.eye(len(learned_b)))  # the simulator taught it

    frames = live_frames(alexnet.model, 12)
    with LiveEnv(
        DeviceClient.for_setup(alexnet, Endpoint(edge.address), link), frames.inputs
    ) as live:
        assert policy.scores(live.observe()).shape == (len(alexnet.model.part.cuts),)
        live_steps = run_loop(live, policy, 12)  # the same object, unchanged
    assert policy.frame == 52  # one counter across both worlds
    offloaded = [r for r in live.records if r.offloaded]
    assert offloaded and not any(r.fallback for r in live.records)
    assert all(s.learned for s in live_steps)
    assert not np.allclose(policy.stats.b, learned_b)  # and it learned from the live frames


def _knowledge_for(entry: registry.PolicyEntry, world: str) -> list[str]:
    """CLI arguments that put ``entry`` in ``world``."""
    if entry.kind == "exit+cut":
        return [
            "-m",
            "branchy_alexnet",
            "--device",
            "rpi3",
            "--latency-req",
            "100ms",
            "--trace",
            "norway_bus_1",
            "--trace-scale",
            "0.5",
        ]
    if entry.kind == "stage":
        return ["-m", "mlp", "--device", "rpi3", "--channel", "rayleigh"]
    return ["-m", "alexnet", "--device", "edge-pc*4"]


def _name(entry: registry.PolicyEntry) -> str:
    return "fixed-3" if entry.name == "fixed-K" else entry.name


@pytest.fixture(scope="module")
def experience_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AlexNet's offline experience on edge-pc*4, for the warm-started learners live."""
    from coinfer.latency.devices import resolve_device
    from coinfer.policies.experience import collect_experience, exit_cuts

    part = load_model("alexnet").part
    env = SimEnv(
        part, resolve_device("edge-pc*4"), resolve_device("edge-pc"), Link.constant(20e6, 0.005)
    )
    exp = collect_experience(
        env, (0, *exit_cuts(part)), 8, "alexnet", "edge-pc*4", "edge-pc", "a simulated earlier run"
    )
    return exp.save(tmp_path_factory.mktemp("experience") / "alexnet.json")


@pytest.mark.parametrize("entry", registry.entries(), ids=lambda e: e.name)
def test_every_policy_runs_in_every_world_it_claims(
    entry: registry.PolicyEntry, edge: ProcessServer, experience_file: Path
) -> None:
    runner = CliRunner()
    name = _name(entry)
    host, port = edge.address
    for world in registry.WORLDS:
        if world == "sim":
            args = ["simulate", "-p", name, "-n", "6", "--json", *_knowledge_for(entry, world)]
            if entry.kind == "cut":
                args += ["-s", "stationary"]
        elif world == "live":
            args = [
                "run",
                "--edge",
                f"{host}:{port}",
                "-p",
                name,
                "-n",
                "3",
                "--json",
                *_knowledge_for(entry, world),
            ]
            if entry.name in LEARNERS and entry.name != "noncoop":  # a group on the edge
                args += ["--group", f"worlds-{entry.name}"]
            if entry.name in WARM_POLICIES:
                args += ["--experience", str(experience_file)]
        else:
            args = ["fleet", "-p", name, "-n", "3", "--json"]
            if entry.name in ("fedlinucb-dw", "fedlinucb-dw-periodic", "fedlinucb-w"):
                continue  # warm starts make experience first: tested in tests/sim
        result = runner.invoke(app, args)
        if world in entry.worlds:
            assert result.exit_code == 0, (world, result.output)
            json.loads(result.stdout)  # strict JSON
        else:  # one line naming why, exit 2, never a traceback
            assert result.exit_code == 2, (world, result.output)
            assert entry.reason(world) in " ".join(result.output.split()), result.output


def test_policies_lists_every_world_and_why_not() -> None:
    result = CliRunner().invoke(app, ["policies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["policies"]}
    assert {"mulinucb-link", "edgent-dynamic", "stopping", "fedlinucb-dw", "oracle"} <= set(rows)
    assert rows["oracle"]["worlds"] == ["sim", "fleet"]
    assert "only a simulator" in rows["oracle"]["not_in"]["live"]
    assert rows["edgent"]["decides"] == "exit+cut" and rows["stopping"]["decides"] == "stage"


def test_the_edge_checks_the_exit_and_serves_each_exits_path() -> None:
    store = ModelStore(["branchy_alexnet", "alexnet"])
    paths = store.exits["branchy_alexnet"]
    assert sorted(paths) == [1, 2, 3, 4, 5]
    assert store.boundary("branchy_alexnet", 0, 1) == store.boundary("branchy_alexnet", 0)
    for model, cut, exit, code in [
        ("branchy_alexnet", 0, 6, ErrorCode.BAD_CUT),
        ("branchy_alexnet", 0, True, ErrorCode.BAD_CUT),
        ("branchy_alexnet", 0, "1", ErrorCode.BAD_CUT),
        ("branchy_alexnet", paths[1].last, 1, ErrorCode.BAD_CUT),  # exit 1's last cut: local
        ("alexnet", 0, 1, ErrorCode.BAD_CUT),  # one exit only
    ]:
        with pytest.raises(ProtocolError) as caught:
            store.boundary(model, cut, exit)
        assert caught.value.code is code


def test_edgent_runs_to_an_exit_over_the_wire_and_counts_right_answers(
    edge: ProcessServer,
) -> None:
    setup = device_setup(load_model("branchy_alexnet"), "edge-pc*4", "edge-pc")
    frames = live_frames(setup.model, 10)
    assert frames.labels is not None and len(frames.labels) == 10
    with LiveEnv(
        DeviceClient.for_setup(setup, Endpoint(edge.address)), frames.inputs, labels=frames.labels
    ) as env:
        for exit, cut in [(2, 3), (5, 0), (1, setup.model.path(1).last), (3, 5)]:
            fb = env.step(Action(cut, exit))
            assert fb.exit == exit and fb.correct is not None
    records = env.records
    assert [r.exit for r in records] == [2, 5, 1, 3]
    assert [r.offloaded for r in records] == [True, True, False, True]
    assert not any(r.fallback for r in records)
    # what came back is what the exit computes here
    net = setup.model.torch_net
    for record, out, x in zip(records, env.client.outputs, frames.inputs, strict=False):
        want = net.forward_to(x[0], record.exit)  # type: ignore[operator]
        assert np.allclose(out[0].numpy(), want.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("when", ["mid-frame", "after the frame"])
def test_ctrl_c_leaves_the_connection_closable(edge: ProcessServer, when: str) -> None:
    """SIGINT mid-frame (the frame is cancelled) or just after one ends, before the loop has
    heard (the race CI once hit): ``KeyboardInterrupt`` reaches the caller, and closing
    afterwards says goodbye to the edge instead of "Event loop stopped before Future
    completed"."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    setup = device_setup(load_model("mlp"), "edge-pc*4", "edge-pc")
    frames = live_frames(setup.model, 2)
    env = LiveEnv(DeviceClient.for_setup(setup, Endpoint(edge.address)), frames.inputs)

    async def interrupted() -> None:
        if when == "mid-frame":
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C, mid-coroutine
            await env.astep(Action(0))
            await asyncio.sleep(60)  # never reached: the interrupt cancels the frame first
        else:
            await env.astep(Action(0))
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)

    try:
        env.step(Action(0))  # connected
        with pytest.raises(KeyboardInterrupt):
            env.run(interrupted())
        env.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(env.records) >= 1 and not any(r.fallback for r in env.records)


def test_stopping_live_task_costs_are_what_was_measured(edge: ProcessServer) -> None:
    from coinfer.systems.stopping.live import run_stages

    setup = device_setup(load_model("mlp"), "rpi3", "host")
    result = run_stages(setup, "stopping", 12, Endpoint(edge.address), calibration_repeats=2)
    doc = result.summary
    assert doc["tasks"] == 12 and doc["fallbacks"] == 0
    assert math.isfinite(doc["mean_cost"]) and doc["analytic_cost"] > 0
    for r in result.records:
        time_s = r.device_s + r.uplink_s + r.edge_s + r.downlink_s
        assert r.cost == pytest.approx(r.energy_j + time_s)  # w = 1
        assert (r.stop < 8) == (r.bytes_sent > 0)
    json.dumps(doc, allow_nan=False)


def test_a_live_device_measures_its_link_for_policies_that_watch_it(edge: ProcessServer) -> None:
    """Frames that send nothing leave the link unmeasured: the device probes it (its input to
    the shallowest exit), and the policy sees the rate the probe really achieved."""
    setup = device_setup(load_model("branchy_alexnet"), "rpi3", "edge-pc")
    frames = live_frames(setup.model, 6)
    link = Link.constant(2e6)
    seen: list[float] = []
    with LiveEnv(
        DeviceClient.for_setup(setup, Endpoint(edge.address), link), frames.inputs, monitor=True
    ) as env:
        for _ in range(6):
            if (bps := env.observe().extra.get("bandwidth_bps")) is not None:
                seen.append(bps)
            env.step(Action(setup.model.path(1).last, 1))  # exit 1, all on the device
    assert not any(r.offloaded for r in env.records)  # the frames themselves sent nothing
    # measured, so never above the link's rate (and slower on a loaded machine: a lower bound
    # far below the rate)
    assert seen and all(0.2e6 < bps <= 2.0e6 * 1.01 for bps in seen), seen
    assert registry.entry("edgent-dynamic").watches_link


def test_a_model_that_takes_no_image_runs_live_on_inputs_of_its_own_shape(
    edge: ProcessServer, tmp_path: Path
) -> None:
    runner = CliRunner()
    address = f"{edge.address[0]}:{edge.address[1]}"
    result = runner.invoke(
        app,
        ["run", "--edge", address, "-m", "mlp", "-p", "edge-only", "-n", "3", "--strict", "--json"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["offloaded"] == 3 and doc["fallbacks"] == 0 and doc["config"]["shaped"] is False
    assert doc["preflight"]["rtt_s"] > 0
    video = runner.invoke(app, ["run", "--edge", address, "-m", "mlp", "--video", str(tmp_path)])
    assert video.exit_code == 2 and "no such file" in video.output
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"")
    refused = runner.invoke(app, ["run", "--edge", address, "-m", "mlp", "--images", str(images)])
    assert refused.exit_code == 2 and "images go to models of one" in " ".join(
        refused.output.split()
    )


def test_ping_and_stats_show_the_edge_and_what_it_serves(edge: ProcessServer) -> None:
    runner = CliRunner()
    address = f"{edge.address[0]}:{edge.address[1]}"
    ping = runner.invoke(app, ["ping", address, "-c", "3", "--json"])
    assert ping.exit_code == 0, ping.output
    assert len(json.loads(ping.stdout)["rtt_s"]) == 3
    stats = runner.invoke(app, ["stats", address, "--json"])
    assert stats.exit_code == 0, stats.output
    served = json.loads(stats.stdout)["stats"]["models"]
    assert set(served) == set(MODELS)
    assert served["mlp"]["fingerprint"] == load_model("mlp").part.fingerprint.hex()
    assert served["branchy_alexnet"]["exits"] == [1, 2, 3, 4, 5]
    table = runner.invoke(app, ["stats", address])
    assert table.exit_code == 0 and served["mlp"]["fingerprint"] in table.stdout
