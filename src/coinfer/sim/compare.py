"""Policies from the registry, built for a simulated device, and a comparison of several on
the same frames, link and edge."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coinfer.defaults import DISCOUNT
from coinfer.policies import registry
from coinfer.policies.static import FixedCut
from coinfer.policies.types import Policy
from coinfer.sim.env import SimEnv
from coinfer.sim.scoring import RunStats, run_policy

POLICIES = (
    "oracle",
    "best-fixed",
    "forced-oracle",
    "device-only",
    "edge-only",
    "neurosurgeon",
    "neurosurgeon-static",
    "linucb",
    "mulinucb",
    "mulinucb-scaled",
    "mulinucb-discounted",
    "mulinucb-link",
)  # what `coinfer simulate -p all` compares


def knowledge(env: SimEnv, discount: float = DISCOUNT) -> registry.Knowledge:
    """What the simulated device knows: its own profile (the front delay of every cut), the
    profiled latency models of both sides and the link's bandwidth when it starts — nothing of
    the edge's later load — and, for the Oracle, the simulator's truth."""
    front = [c.device_s for c in env.costs()]  # device compute does not change over a run
    return registry.Knowledge.starting(
        env.part,
        front,
        env.device,
        env.edge,
        env.link,
        "sim",
        discount=discount,
        seed=env.seed,
        truth=env.expected_delays,
    )


def make_policy(name: str, env: SimEnv, discount: float = DISCOUNT) -> Policy:
    """The registry's ``name`` for this simulated device (``best-fixed`` is built by
    ``compare``, from the Oracle's run)."""
    return registry.create(name, knowledge(env, discount))


def compare(
    names: Sequence[str],
    new_env: Callable[[], SimEnv],
    frames: int,
    discount: float = DISCOUNT,
    on_frame: Callable[[str, int], None] | None = None,
) -> dict[str, RunStats]:
    """Run each policy on a fresh environment from ``new_env`` (same seed: same frames, link,
    edge and noise). ``best-fixed`` is the cut with the lowest summed true delay over the
    Oracle's run, then run as a fixed cut: how far a learner that cannot see the link could
    get at best."""
    order = list(dict.fromkeys(names))
    if "best-fixed" in order:  # it needs the Oracle's run first
        order = [n for n in order if n != "oracle"]
        order.insert(order.index("best-fixed"), "oracle")
    results: dict[str, RunStats] = {}
    for name in order:
        env = new_env()
        if name == "best-fixed":
            policy: Policy = FixedCut(int(np.argmin(results["oracle"].cut_totals_s)))
        else:
            policy = make_policy(name, env, discount)

        def tick(i: int, name: str = name) -> None:
            if on_frame is not None:
                on_frame(name, i)

        results[name] = run_policy(env, policy, frames, tick)
    return {n: results[n] for n in order if n in names or n == "oracle"}
