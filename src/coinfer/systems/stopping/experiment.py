"""Optimal-stopping splitting and model placement (Yan, Bi, Zhang; DESIGN §4).

For MLP, AlexNet and VGG16 chains on an `edge-pc/8` device and an `edge-pc` edge: the optimal
rule (backward induction), the one-stage look-ahead, myopic, best fixed split, edge-only,
device-only and the prophet bound, under Rayleigh fading (1% outage) at several mean SNRs and
time weights, plus a Rician and a finite-state Markov channel; each rule's analytic expected
cost beside its Monte Carlo mean with a 95% confidence interval. Then the per-task cost of every
placement L̄ with the amortised parameter download, and the equal-width MLP's closed form
against the numeric search.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from coinfer import Partitioning, partition, zoo
from coinfer.defaults import EDGE_CLASS, SIM_DEVICE_CLASS
from coinfer.latency.channels import MarkovChannel, RayleighChannel, RicianChannel
from coinfer.latency.devices import resolve_device
from coinfer.policies.stopping.costs import (
    COMPUTE_W,
    RADIO,
    Fading,
    StoppingCosts,
    chain_costs,
    gain_for_snr,
    model_costs,
)
from coinfer.policies.stopping.markov import markov_baselines, markov_optimal_rule
from coinfer.policies.stopping.placement import (
    equal_chain_placement,
    model_layer_param_bits,
    placement_costs,
)
from coinfer.policies.stopping.rules import (
    ThresholdRule,
    best_fixed_rule,
    fixed_rule,
    myopic_rule,
    optimal_rule,
    osla_rule,
)
from coinfer.report import ExperimentResult, log_axis, new_figure, save_figure
from coinfer.sim import stages as mc
from coinfer.systems.base import ExperimentContext

MODELS = ("mlp", "alexnet", "vgg16")
RECEIVE_W = 1.0  # radio power while downloading parameters (W)
DOWNLOAD_BPS = 20e6
OUTAGE_FRACTION = 0.01  # h_min = 1% of the mean gain: ~1% of Rayleigh blocks are in outage
Progress = Callable[[str, int, int], None]


def _gain_for_snr(snr_db: float) -> float:
    return gain_for_snr(snr_db, RADIO)


def _rules(costs: StoppingCosts, channel: Fading, mean_gain: float) -> list[ThresholdRule]:
    return [
        optimal_rule(costs, channel),
        osla_rule(costs, channel),
        myopic_rule(costs, channel, mean_gain),
        best_fixed_rule(costs, channel, mean_gain),
        fixed_rule(costs, channel, 0, "edge-only"),
        fixed_rule(costs, channel, costs.layers, "device-only"),
    ]


def _row(
    setting: dict[str, Any],
    policy: str,
    draws: np.ndarray,
    analytic: float | None,
    optimal_draws: np.ndarray,
) -> dict[str, Any]:
    """One policy in one setting: its Monte Carlo mean and 95% interval, its exact cost, and its
    cost minus the optimal rule's on the same channel draws (paired, with its 95% interval)."""
    ci95 = 1.96 * float(draws.std()) / math.sqrt(len(draws))
    extra = draws - optimal_draws
    return {
        **setting,
        "policy": policy,
        "mean_cost": float(draws.mean()),
        "ci95": ci95,
        "analytic_cost": analytic,
        "minus_optimal": float(extra.mean()),
        "minus_optimal_ci95": 1.96 * float(extra.std()) / math.sqrt(len(extra)),
    }


def _judge(rows: list[dict[str, Any]]) -> None:
    """Mark each exact cost as inside its Monte Carlo interval or not, at 95% for each row and
    at 95% for the whole table (Bonferroni: with 180 rows, 95% intervals would miss ~9 by chance
    however exact the values). A rule that almost never varies has ci95 ≈ 0: floored at 1e-6."""
    checked = [r for r in rows if r["analytic_cost"] is not None]
    z_family = float(stats.norm.ppf(1 - 0.05 / (2 * max(len(checked), 1))))
    for row in rows:
        row["analytic_within_ci"] = row["analytic_within_ci_familywise"] = None
        if row["analytic_cost"] is None:
            continue
        error = abs(row["mean_cost"] - row["analytic_cost"])
        floor = 1e-6 * row["analytic_cost"]
        row["analytic_within_ci"] = error <= max(row["ci95"], floor)
        row["analytic_within_ci_familywise"] = error <= max(row["ci95"] / 1.96 * z_family, floor)


def policy_rows(quick: bool, progress: Progress | None = None) -> list[dict[str, Any]]:
    tasks = 20_000 if quick else 200_000
    snrs = (0.0, 10.0, 20.0)
    weights = (0.1, 1.0, 10.0)
    device, edge = resolve_device(SIM_DEVICE_CLASS), resolve_device(EDGE_CLASS)
    rows = []
    combos = list(itertools.product(MODELS, snrs, weights, ("rayleigh", "rician")))
    combos = [c for c in combos if c[3] == "rayleigh" or (c[1] == 10.0 and c[2] == 1.0)]
    parts = {m: partition(zoo.create(m), zoo.example_inputs(m)) for m in MODELS}
    for done, (model, snr, weight, kind) in enumerate(combos):
        costs = model_costs(parts[model], device, edge, COMPUTE_W, RADIO.power_w, weight, RADIO)
        mean = _gain_for_snr(snr)
        channel: RayleighChannel | RicianChannel = (
            RayleighChannel(mean, OUTAGE_FRACTION * mean)
            if kind == "rayleigh"
            else RicianChannel(3.0, mean, OUTAGE_FRACTION * mean)
        )
        setting = {
            "setting": f"{model}/{kind}/{snr:g}dB/w={weight:g}",
            "model": model,
            "channel": kind,
            "snr_db": snr,
            "time_weight": weight,
        }
        results: list[tuple[str, np.ndarray, float | None]] = []
        for rule in _rules(costs, channel, mean):
            rng = np.random.default_rng(done)  # common random numbers: the same channel draws
            draws = mc.simulate_rule(rule, costs, channel.sample, channel.h_min, tasks, rng)
            results.append((rule.name, draws, rule.cost))
        rng = np.random.default_rng(done)
        prophet = mc.simulate_prophet(
            costs, channel.sample, channel.h_min, costs.layers, tasks, rng
        )
        results.append(("prophet", prophet, None))
        optimal_draws = results[0][1]
        rows += [_row(setting, name, draws, cost, optimal_draws) for name, draws, cost in results]
        if progress is not None:
            progress("policies", done + 1, len(combos))
    rows += markov_rows(parts, tasks)
    _judge(rows)
    return rows


def markov_channel(snr_db: float = 10.0) -> MarkovChannel:
    """Three states (a fade, the mean, a good block) around the mean gain at ``snr_db``, moving
    to a neighbour with probability 0.2–0.3 per stage: slow fading with memory."""
    mean = _gain_for_snr(snr_db)
    moves = [[0.7, 0.3, 0.0], [0.2, 0.6, 0.2], [0.0, 0.3, 0.7]]
    return MarkovChannel.from_lists([0.1 * mean, mean, 3 * mean], moves)


def markov_rows(parts: dict[str, Partitioning], tasks: int) -> list[dict[str, Any]]:
    """The same policies on the finite-state Markov channel (10 dB, w = 1): exact by backward
    induction on (stage, state), Monte Carlo on shared paths."""
    device, edge = resolve_device(SIM_DEVICE_CLASS), resolve_device(EDGE_CLASS)
    channel = markov_channel()
    rows: list[dict[str, Any]] = []
    for model, part in parts.items():
        costs = model_costs(part, device, edge, COMPUTE_W, RADIO.power_w, 1.0, RADIO)
        rules = [markov_optimal_rule(costs, channel), *markov_baselines(costs, channel)]
        realised, prophet = mc.simulate_markov(
            rules, costs, channel, tasks, np.random.default_rng(len(rows))
        )
        setting = {
            "setting": f"{model}/fsmc/10dB/w=1",
            "model": model,
            "channel": "fsmc",
            "snr_db": 10.0,
            "time_weight": 1.0,
        }
        for rule, draws in zip(rules, realised, strict=True):
            rows.append(_row(setting, rule.name, draws, rule.cost, realised[0]))
        rows.append(_row(setting, "prophet", prophet, None, realised[0]))
    return rows


def placement_plot(out_dir: Path) -> tuple[Path, list[str]]:
    """Per-task cost against L̄ for the three models, three update rates; the minima."""
    device, edge = resolve_device(SIM_DEVICE_CLASS), resolve_device(EDGE_CLASS)
    mean = _gain_for_snr(10.0)
    channel = RayleighChannel(mean, OUTAGE_FRACTION * mean)
    fig, axes = new_figure(cols=3, width=4.6, height=3.6)
    notes = []
    for ax, model in zip(axes, MODELS, strict=True):
        part = partition(zoo.create(model), zoo.example_inputs(model))
        costs = model_costs(part, device, edge, COMPUTE_W, RADIO.power_w, 1.0, RADIO)
        bits = model_layer_param_bits(part)
        for tasks in (100, 10_000, 1_000_000):
            per_task = placement_costs(costs, channel, bits, DOWNLOAD_BPS, RECEIVE_W, tasks)
            best = int(np.argmin(per_task))
            ax.plot(range(len(per_task)), per_task, marker=".", label=f"{tasks:,} tasks/update")
            ax.plot([best], [per_task[best]], "k*", ms=10)
            notes.append(
                f"placement {model}, {tasks:,} tasks per model update: L̄* = {best} of "
                f"{costs.layers}, {per_task[best]:.4g} per task"
            )
        log_axis(ax)
        ax.set_xlabel("layers stored on the device (L̄)")
        ax.set_title(model, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("expected cost per task (J + w·s)")
    axes[0].legend(fontsize=7)
    return save_figure(fig, out_dir / "cost_vs_placement.png"), notes


def closed_form_check() -> str:
    """The equal-width MLP's closed-form L̄* against the numeric search, over a grid."""
    grid = itertools.product(
        [6, 12],
        [0.01, 0.05],
        [0.002, 0.01],
        [8e3, 64e3],
        [0.5, 2.0],
        [-10.0, 0.0, 10.0, 20.0],
        [10, 1_000, 100_000],
    )
    agree = total = 0
    layer_bits = 32.0 * 1024 * 1024
    for layers, tau, edge_s, bits, weight, snr, tasks in grid:
        costs = chain_costs(
            [tau] * layers,
            [edge_s] * layers,
            [bits] * layers,
            COMPUTE_W,
            RADIO.power_w,
            weight,
            RADIO,
        )
        mean = _gain_for_snr(snr)
        channel = RayleighChannel(mean, OUTAGE_FRACTION * mean)
        numeric = placement_costs(
            costs, channel, [layer_bits] * layers, DOWNLOAD_BPS, RECEIVE_W, tasks
        )
        closed = equal_chain_placement(costs, channel, layer_bits, DOWNLOAD_BPS, RECEIVE_W, tasks)
        agree += bool(math.isclose(numeric[closed], numeric.min(), rel_tol=1e-9, abs_tol=1e-12))
        total += 1
    return f"equal-width MLP closed form = numeric optimum in {agree} of {total} grid points"


def gap_plot(rows: list[dict[str, Any]], out_dir: Path) -> Path:
    """OSLA's and the baselines' analytic cost over the optimal rule's, per setting."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    by = {(r["setting"], r["policy"]): r for r in rows}
    fig, ax = new_figure(width=11, height=4.2)
    for policy in ("osla", "myopic", "fixed", "edge-only"):
        ratio = [
            by[(s, policy)]["analytic_cost"] / by[(s, "optimal")]["analytic_cost"] for s in settings
        ]
        ax.plot(range(len(settings)), ratio, marker="o", ls="none", label=policy)
    prophet = [
        by[(s, "prophet")]["mean_cost"] / by[(s, "optimal")]["analytic_cost"] for s in settings
    ]
    ax.plot(range(len(settings)), prophet, marker="v", ls="none", label="prophet (bound)")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(range(len(settings)), settings, rotation=80, fontsize=6)
    log_axis(ax)
    ax.set_ylabel("expected cost / optimal rule's")
    ax.set_title("each setting on its own (no line joins them)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return save_figure(fig, out_dir / "policies_vs_optimal.png")


def run(ctx: ExperimentContext) -> ExperimentResult:
    out_dir, quick, progress = ctx.out_dir, ctx.quick, ctx.progress
    rows = policy_rows(quick, progress)
    plots = [gap_plot(rows, out_dir)]
    placement, placement_notes = placement_plot(out_dir)
    plots.append(placement)
    notes = [
        f"device edge-pc/8 ({COMPUTE_W:g} W computing), edge edge-pc; uplink B = 1 MHz, "
        f"P = {RADIO.power_w:g} W, σ² = {RADIO.noise_w:g} W; Rayleigh (and Rician K = 3) block "
        f"fading, outage below {OUTAGE_FRACTION:g} × the mean gain (the device computes on, or "
        "waits 10 ms blocks at the last stage); cost = device energy + w × latency",
        "analytic_cost: exact expectation (quadrature); mean_cost ± ci95: Monte Carlo, "
        f"{20_000 if quick else 200_000:,} tasks, the same channel draws for every policy of a "
        "setting (common random numbers); ci95 floored at 1e-6 of the cost",
        *placement_notes,
    ]
    if not quick:
        notes.append(closed_form_check())
    return ExperimentResult("stopping", rows, notes, plots, group_by=("setting",))
