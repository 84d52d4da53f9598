"""A live run from names (what ``coinfer run`` and the demo do): the shared device setup, the
registry's policy, the one loop over ``LiveEnv`` (frame by frame) or ``LiveStageEnv`` (stage by
stage, optimal stopping), and a summary that strict JSON parsers accept."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from coinfer.assembly import DeviceSetup
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.group import RemoteGroup
from coinfer.device.inputs import Frames, live_frames
from coinfer.device.live_env import LiveEnv
from coinfer.device.preflight import Preflight, PreflightError, preflight
from coinfer.device.records import FrameRecord, summary
from coinfer.device.stage_env import (
    Calibration,
    LiveStageEnv,
    TaskRecord,
    mean_cost,
    measured_costs,
)
from coinfer.errors import BadValueError
from coinfer.graph.types import ANS_FEATURES
from coinfer.latency.channels import fading_channel
from coinfer.latency.host import settle_heap
from coinfer.latency.link import Link
from coinfer.latency.traces import shipped_history_bps
from coinfer.policies import registry
from coinfer.policies.experience import Experience
from coinfer.policies.fedlinucb import LEARNERS as FEDERATED_LEARNERS
from coinfer.policies.fedlinucb import Federation
from coinfer.policies.loop import Step, run_loop
from coinfer.policies.stopping import (
    COMPUTE_W,
    RADIO,
    StageProblem,
    evaluate_rule,
    gain_for_snr,
    optimal_rule,
    rule_of,
)


def link_history_bps(trace: str | None, scale: float, link: Link) -> list[float]:
    """What Edgent's bandwidth states are learnt from: the other shipped traces (at the run's
    scale) when the run replays one, else the link's rate at the start."""
    if trace is None:
        return [link.uplink.at(0.0)]
    return shipped_history_bps(trace, scale)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Cooperation:
    """How a federated learner (``fedlinucb-dw`` ...) joins its group on the edge: the group's
    name (devices of one type share one), its offline experience (the warm start) and how it
    federates."""

    group: str | None = None
    experience: Experience | None = None
    federation: Federation = field(default_factory=Federation)


def _join(
    setup: DeviceSetup, policy_name: str, edge: Endpoint, cooperation: Cooperation | None
) -> tuple[RemoteGroup | None, dict[str, Any]]:
    """The remote group a federated learner syncs with, and what its Knowledge adds."""
    co = cooperation or Cooperation()
    if policy_name not in FEDERATED_LEARNERS:
        if co.group is not None or co.experience is not None:
            raise BadValueError(
                f"--group and --experience are for the federated policies "
                f"({', '.join(FEDERATED_LEARNERS)}), not {policy_name}"
            )
        return None, {}
    fields: dict[str, Any] = {"federation": co.federation}
    if co.experience is not None:
        co.experience.check_fits(setup.model.name, setup.model.part.last)
        fields["experience"] = co.experience.records
    if co.group is None or policy_name == "noncoop":
        return None, fields
    dim = len(ANS_FEATURES) + int(co.federation.link_feature)
    group = RemoteGroup(co.group, dim, co.federation.lam, edge)
    fields["group"] = group
    return group, fields


@dataclass(frozen=True)
class LiveRun:
    """A frame-by-frame live run: its summary, every frame's record and outputs (flat, as they
    travelled), whether each answer was right (labelled inputs), and the preflight's finding."""

    summary: dict[str, Any]
    records: list[FrameRecord]
    correct: list[bool | None]
    preflight: Preflight | None = None


def run_frames(
    setup: DeviceSetup,
    policy_name: str,
    frames: int,
    link: Link | None,
    edge: Endpoint,
    *,
    options: ClientOptions | None = None,
    seed: int = 0,
    latency_req_s: float | None = None,
    history_bps: Sequence[float] = (),
    on_frame: Callable[[FrameRecord], None] | None = None,
    data: Frames | None = None,
    emulate: bool = True,
    check_edge: bool = False,
    on_output: Callable[[FrameRecord, list[torch.Tensor]], None] | None = None,
    cooperation: Cooperation | None = None,
    duration_s: float | None = None,
) -> LiveRun:
    """``frames`` frames through the one loop. ``link`` shapes the connection (None: a real
    network, as it is); ``check_edge`` runs the preflight first (PreflightError naming what is
    wrong), whose measured RTT and upload rate are what the policy starts from on a real
    network. ``emulate=False`` runs the device at this host's own speed. A federated learner
    syncs with its group on the edge as ``cooperation`` says; ``duration_s`` ends the run
    early (after at least one frame)."""
    entry = registry.check_world(policy_name, "live")
    group, joined = _join(setup, policy_name, edge, cooperation)
    data = data if data is not None else live_frames(setup.model, frames, seed)
    chosen = replace(options or ClientOptions(), emulate=emulate, keep_outputs=1)
    client = DeviceClient.for_setup(setup, edge, link, chosen)
    env = LiveEnv(
        client,
        data.inputs,
        data.key_weights,
        data.labels,
        monitor=entry.watches_link,
        federation=group,
    )
    try:
        found = env.run(preflight(client, data.inputs[0])) if check_edge else None
        if found is not None and group is not None and not found.federation:
            raise PreflightError(
                f"the edge at {edge} keeps no federated statistics: start it "
                f"with coinfer serve --federation"
            )
        planning = link
        if planning is None:  # a real network: what the preflight measured
            rtt = found.rtt_s if found else 0.0
            planning = Link.constant(found.uplink_bps if found and found.uplink_bps else 10e6, rtt)
        knowledge = setup.knowledge(
            "live",
            planning,
            latency_req_s=latency_req_s,
            link_history_bps=list(history_bps),
            seed=seed,
            **joined,
        )
        policy = registry.create(policy_name, knowledge)
        if group is not None:  # join the group (and hand it the warm start) before deciding
            env.run(group.flush())
        settle_heap()  # model and frames are ready: collections need not walk them again

        def report(step: Step) -> None:
            record = env.records[step.frame]
            if on_output is not None:
                on_output(record, client.outputs[-1])
            if on_frame is not None:
                on_frame(record)

        def over() -> bool:
            return duration_s is not None and env.elapsed() >= duration_s

        run_loop(env, policy, frames, on_step=report, until=over)
    finally:
        env.close()
    result = summary(env.records)
    known = [c for c in env.correct if c is not None]
    result["accuracy"] = float(np.mean(known)) if known else None
    if latency_req_s is not None:
        hits = [r.total_s <= latency_req_s for r in env.records]
        result["latency_req_s"] = latency_req_s
        result["deadline_hit_rate"] = float(np.mean(hits)) if hits else None
    if setup.model.exits:
        result["exits"] = {
            str(e): sum(r.exit == e for r in env.records)
            for e in sorted({r.exit for r in env.records if r.exit is not None})
        }
    if found is not None:
        result["preflight"] = {"rtt_s": found.rtt_s, "uplink_bps": found.uplink_bps}
    if group is not None:
        result["federation"] = federation_summary(group)
    return LiveRun(result, env.records, env.correct, found)


def federation_summary(group: RemoteGroup) -> dict[str, Any]:
    """What a live federated device exchanged with its group."""
    return {
        "group": group.name,
        "messages": group.wire.messages,
        "bytes": group.wire.bytes,
        "failed_syncs": group.wire.failures,
        "last_error": group.wire.last_error,
        "group_records": group.group_count,
        "records_sent": group.pushed,
    }


def preflight_edge(
    setup: DeviceSetup, edge: Endpoint, options: ClientOptions | None = None
) -> Preflight:
    """The preflight on a connection of its own (for runs whose client lives elsewhere: the
    stage-wise world); PreflightError naming what is wrong."""
    import asyncio

    client = DeviceClient.for_setup(setup, edge, None, options)

    async def check() -> Preflight:
        try:
            return await preflight(client, setup.model.inputs)
        finally:
            await client.close()

    return asyncio.run(check())


@dataclass(frozen=True)
class StageResult:
    summary: dict[str, Any]
    records: list[TaskRecord]
    calibration: Calibration


def run_stages(
    setup: DeviceSetup,
    policy_name: str,
    tasks: int,
    edge: Endpoint,
    *,
    options: ClientOptions | None = None,
    channel: str = "rayleigh",
    snr_db: float = 10.0,
    time_weight: float = 1.0,
    seed: int = 0,
    calibration_repeats: int = 5,
    calibration: Calibration | None = None,
    on_task: Callable[[TaskRecord], None] | None = None,
) -> StageResult:
    """``tasks`` tasks of online splitting over a fading uplink: the rule built from the
    per-layer times measured here first (or from ``calibration``, to compare several policies
    on one set of measured times), each task's measured cost, and beside it the rule's analytic
    expected cost (and the optimal rule's) on those measured times."""
    registry.check_world(policy_name, "live")
    mean_gain = gain_for_snr(snr_db)
    fading = fading_channel(channel, mean_gain)
    client = DeviceClient.for_setup(setup, edge, None, options)
    env = LiveStageEnv(
        client, setup.model.inputs, fading, fading.sample, RADIO, COMPUTE_W, time_weight, seed
    )
    try:
        if calibration is None:
            calibration = env.calibrate(calibration_repeats)
        costs = calibration.costs(COMPUTE_W, RADIO, time_weight)
        problem = StageProblem(costs, fading)
        knowledge = setup.knowledge("live", Link.constant(1e6), stages=problem)
        policy = registry.create(policy_name, knowledge)
        rule = rule_of(policy, costs, fading, policy_name)

        def report(step: Step) -> None:
            if on_task is not None:
                on_task(env.records[-1])

        run_loop(env, policy, tasks, on_step=report)
    finally:
        env.close()
    mean, half = mean_cost(env.records)
    analytic = float(rule.cost)
    # the same rule, costed by the times measured during the run (DESIGN: its analytic cost
    # "on the measured per-layer times")
    as_run = evaluate_rule(rule, measured_costs(env, calibration, time_weight), fading)
    # the cost model on the very gains met: what separates measurement from channel sampling
    on_draws = float(np.mean([float(costs.stop_cost(r.stop, r.gain)) for r in env.records]))
    optimal = optimal_rule(costs, fading).cost
    stops = [r.stop for r in env.records]
    doc = {
        "model": setup.model.name,
        "policy": policy_name,
        "tasks": len(env.records),
        "channel": channel,
        "snr_db": snr_db,
        "time_weight": time_weight,
        "seed": seed,
        "device": setup.device_name,
        "mean_cost": _finite(mean),
        "ci95": _finite(half),
        "analytic_cost": _finite(analytic),
        "optimal_analytic_cost": _finite(optimal),
        "measured_vs_analytic": _finite(mean / analytic - 1.0) if analytic else None,
        "analytic_cost_as_run": _finite(as_run),
        "measured_vs_analytic_as_run": _finite(mean / as_run - 1.0) if as_run else None,
        "model_cost_on_draws": _finite(on_draws),
        "measured_vs_model_on_draws": _finite(mean / on_draws - 1.0) if on_draws else None,
        "fallbacks": sum(r.fallback for r in env.records),
        "stops": {str(s): stops.count(s) for s in sorted(set(stops))},
        "mean_latency_s": _finite(
            float(np.mean([r.device_s + r.uplink_s + r.edge_s + r.downlink_s for r in env.records]))
        ),
        "calibration": {
            "device_s": list(calibration.device_s),
            "edge_s": list(calibration.edge_s),
            "bits": list(calibration.bits),
            "upload_overhead_s": calibration.upload_overhead_s,
            "reply_s": calibration.reply_s,
        },
    }
    return StageResult(doc, env.records, calibration)
