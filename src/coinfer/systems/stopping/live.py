"""Optimal stopping live: ``tasks`` tasks of online splitting over a fading uplink against a real
edge, layer by layer on the device (``device.stage_env``): the rule built from the per-layer
times measured here first, each task's measured cost, and beside it the rule's analytic
expected cost (and the optimal rule's) on those measured times."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from coinfer.assembly import DeviceSetup
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.stage_env import (
    Calibration,
    LiveStageEnv,
    TaskRecord,
    mean_cost,
    measured_costs,
)
from coinfer.latency.channels import fading_channel
from coinfer.latency.link import Link
from coinfer.output import percentile
from coinfer.policies import registry
from coinfer.policies.loop import Step, run_loop
from coinfer.policies.stopping.costs import COMPUTE_W, RADIO, Fading, StoppingCosts, gain_for_snr
from coinfer.policies.stopping.policy import StageProblem, rule_of
from coinfer.policies.stopping.rules import ThresholdRule, evaluate_rule, optimal_rule


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


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
    doc = {
        "model": setup.model.name,
        "policy": policy_name,
        "tasks": len(env.records),
        "channel": channel,
        "snr_db": snr_db,
        "time_weight": time_weight,
        "seed": seed,
        "device": setup.device_name,
        **_costs(env, rule, costs, fading, calibration, time_weight),
    }
    return StageResult(doc, env.records, calibration)


def _costs(
    env: LiveStageEnv,
    rule: ThresholdRule,
    costs: StoppingCosts,
    fading: Fading,
    calibration: Calibration,
    time_weight: float,
) -> dict[str, Any]:
    """The run's measured cost beside the rule's analytic cost — on the calibration's times,
    on the times measured during the run, and the cost model on the very gains met (what
    separates measurement from channel sampling) — and what the tasks did."""
    mean, half = mean_cost(env.records)
    analytic = float(rule.cost)
    # the same rule, costed by the times measured during the run (DESIGN: its analytic cost
    # "on the measured per-layer times")
    as_run = evaluate_rule(rule, measured_costs(env, calibration, time_weight), fading)
    # the cost model on the very gains met: what separates measurement from channel sampling
    on_draws = float(np.mean([float(costs.stop_cost(r.stop, r.gain)) for r in env.records]))
    optimal = optimal_rule(costs, fading).cost
    stops = [r.stop for r in env.records]
    latencies = [r.device_s + r.uplink_s + r.edge_s + r.downlink_s for r in env.records]
    return {
        "mean_cost": _finite(mean),
        "ci95": _finite(half),
        "analytic_cost": _finite(analytic),
        "optimal_analytic_cost": _finite(optimal),
        "measured_vs_analytic": _finite(mean / analytic - 1.0) if analytic else None,
        "analytic_cost_as_run": _finite(as_run),
        "measured_vs_analytic_as_run": _finite(mean / as_run - 1.0) if as_run else None,
        "model_cost_on_draws": _finite(on_draws),
        "measured_vs_model_on_draws": _finite(mean / on_draws - 1.0) if on_draws else None,
        # what a frame run's summary says too, so both runs' JSON read alike (a task a frame)
        "frames": len(env.records),
        "offloaded": sum(
            r.stop < len(calibration.device_s) and not r.fallback for r in env.records
        ),
        "fallbacks": sum(r.fallback for r in env.records),
        "stops": {str(s): stops.count(s) for s in sorted(set(stops))},
        "mean_latency_s": _finite(float(np.mean(latencies))),
        **{f"p{q}_latency_s": percentile(latencies, q) for q in (50, 95, 99)},
        "errors": [],
        "calibration": {
            "device_s": list(calibration.device_s),
            "edge_s": list(calibration.edge_s),
            "bits": list(calibration.bits),
            "upload_overhead_s": calibration.upload_overhead_s,
            "reply_s": calibration.reply_s,
        },
    }
