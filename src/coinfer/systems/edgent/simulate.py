"""Edgent simulated: its policies (exit and cut) over a trace, frames back to back, the held-out
digits as frames — per policy the accuracy, deadline hit rate and mean latency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coinfer.assembly import assemble
from coinfer.data import trace_path
from coinfer.defaults import EDGE_CLASS, PLAN_DEVICE_CLASS, RTT_S
from coinfer.errors import BadValueError
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.latency.traces import shipped_history_bps
from coinfer.policies import registry
from coinfer.policies.loop import run_loop
from coinfer.sim.env import SimEnv
from coinfer.zoo.spec import ModelSpec
from coinfer.zoo.training import held_out_correctness, held_out_order


def exit_correctness(net: Any, frames: int, seed: int = 0) -> np.ndarray:
    """correct[i, e-1]: does exit e answer frame i right? Frame i shows the held-out image the
    live device shows as its frame i (``zoo.training.held_out_order``)."""
    return np.asarray(held_out_correctness(net)[held_out_order(frames, seed)])


def simulate_edgent(
    model: str | ModelSpec,
    policies: Sequence[str],
    frames: int,
    trace: str,
    trace_scale: float,
    latency_req_s: float,
    seed: int = 0,
    device: str = PLAN_DEVICE_CLASS,
    edge: str = EDGE_CLASS,
    noise: float = 0.0,
    rtt_s: float = RTT_S,
) -> list[dict[str, Any]]:
    """Edgent's policies (exit and cut) over a trace, frames back to back, the held-out digits
    as frames: per policy its accuracy, deadline hit rate and mean latency. Bandwidth states
    come from the other shipped traces at the same scale, as on the live device."""
    setup = assemble(model, device, edge)
    if not setup.model.exits:
        raise BadValueError(
            f"Edgent's policies choose an exit: {model!r} has one (use branchy_alexnet)"
        )
    link = Link(TraceBandwidth.from_file(trace_path(trace), scale=trace_scale), rtt_s)
    history = shipped_history_bps(trace, trace_scale)
    correct = exit_correctness(setup.model.net, frames, seed)
    exits = {p.exit: p.part for p in setup.model.exits}
    rows = []
    for name in policies:
        env = SimEnv(
            setup.model.part,
            setup.device,
            setup.edge,
            link,
            noise=noise,
            seed=seed,
            exits=exits,
            correct=correct,
        )
        knowledge = setup.knowledge(
            "sim",
            link,
            latency_req_s=latency_req_s,
            link_history_bps=history,
            truth=env.expected_delays,
        )
        steps = run_loop(env, registry.create(name, knowledge), frames)
        rows.append(edgent_row(name, [s.feedback for s in steps], latency_req_s))
    return rows


def edgent_row(policy: str, feedback: Sequence[Any], latency_req_s: float) -> dict[str, Any]:
    """Accuracy, deadline hit rate, mean latency and the exits taken, over frames."""
    totals = [fb.total_s for fb in feedback]
    known = [fb.correct for fb in feedback if fb.correct is not None]
    exits = [fb.exit for fb in feedback if fb.exit is not None]
    return {
        "policy": policy,
        "frames": len(totals),
        "accuracy": float(np.mean(known)) if known else None,
        "deadline_hit_rate": float(np.mean([t <= latency_req_s for t in totals])),
        "mean_latency_s": float(np.mean(totals)),
        "exits": {str(e): exits.count(e) for e in sorted(set(exits))},
    }
