"""Every policy by name, built for a simulated environment, and a comparison of several on
the same frames, link and edge."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coinfer.policies.bandits import LinUCB, MuLinUCB
from coinfer.policies.neurosurgeon import Neurosurgeon
from coinfer.policies.static import FixedCut, ForcedOracle, Oracle, static_policy
from coinfer.policies.types import Policy
from coinfer.sim.env import SimEnv
from coinfer.sim.runner import RunStats, run_policy

POLICIES = ("oracle", "best-fixed", "forced-oracle", "device-only", "edge-only", "neurosurgeon",
            "neurosurgeon-static", "linucb", "mulinucb", "mulinucb-discounted",
            "mulinucb-link")  # fmt: skip
DEFAULT_DISCOUNT = 0.99


def policy_names() -> list[str]:
    return [*POLICIES, "fixed-K"]


def make_policy(name: str, env: SimEnv, discount: float = DEFAULT_DISCOUNT) -> Policy:
    """A policy that knows what a device would: its own profile (the front delay of every cut)
    and, for Neurosurgeon, the profiled latency models of both sides and the link's bandwidth
    when it starts; nothing of the edge's later load. ``best-fixed`` is built by ``compare``."""
    last = env.part.last
    front = [c.device_s for c in env.costs()]  # device compute does not change over a run
    if name == "oracle":
        return Oracle(env.expected_delays)
    if name == "forced-oracle":
        return ForcedOracle(env.expected_delays)
    if (fixed := static_policy(name, last)) is not None:
        return fixed
    if name in ("neurosurgeon", "neurosurgeon-static"):
        return Neurosurgeon(env.part, env.device, env.edge, env.link.uplink.at(0.0),
                            rtt_s=env.link.rtt_s, adaptive=name == "neurosurgeon")  # fmt: skip
    if name == "linucb":
        return LinUCB(env.cuts, front)
    if name == "mulinucb":
        return MuLinUCB(env.cuts, front)
    if name == "mulinucb-discounted":
        return MuLinUCB(env.cuts, front, discount=discount)
    if name == "mulinucb-link":
        return MuLinUCB(env.cuts, front, discount=discount, link_feature=True)
    raise ValueError(f"unknown policy {name!r}: choose from {', '.join(policy_names())}, or all")


def compare(
    names: Sequence[str],
    new_env: Callable[[], SimEnv],
    frames: int,
    discount: float = DEFAULT_DISCOUNT,
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
