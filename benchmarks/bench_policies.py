"""Decision cost of each policy and simulator speed.

select + update per frame, for each policy on VGG16's layer cuts (P + 1 = 23 actions, d = 7
features): the feedback stream is recorded from a simulated run first, so only the policy is
timed; blocks of ``--frames`` frames, median over ``--blocks`` blocks. Goal: μLinUCB ≤ 50 µs.
Then whole simulated frames per second (environment + policy + Oracle bookkeeping) per scenario.

    python benchmarks/bench_policies.py [--frames 2000] [--blocks 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from coinfer import partition, zoo
from coinfer.defaults import EDGE_CLASS, SIM_DEVICE_CLASS
from coinfer.latency.devices import resolve_device
from coinfer.policies.types import Context, Feedback
from coinfer.sim.compare import make_policy
from coinfer.sim.env import SimEnv
from coinfer.sim.scoring import run_policy
from coinfer.systems.ans.scenarios import SCENARIOS, build_world

TIMED = (
    "mulinucb",
    "mulinucb-scaled",
    "mulinucb-discounted",
    "mulinucb-link",
    "linucb",
    "neurosurgeon",
    "fixed-0",
)


def _env(part: Any, scenario: str, frames: int) -> SimEnv:
    world = build_world(scenario, frames)
    keys = [0.8 if i % 30 == 0 else 0.2 for i in range(frames)]
    return SimEnv(
        part,
        resolve_device(SIM_DEVICE_CLASS),
        resolve_device(EDGE_CLASS),
        world.link,
        world.edge_load,
        0.1,
        world.frame_interval_s,
        keys,
        0,
        world.clock,
    )


def decision_microseconds(part: Any, name: str, frames: int, blocks: int) -> float:
    """Median over blocks of the per-frame select+update time, in µs."""
    env = _env(part, "network-change", frames)
    ctxs = [Context(frame=i, key_weight=0.8 if i % 30 == 0 else 0.2) for i in range(frames)]
    feedback = [Feedback.of(c) for c in env.costs()]  # one measured breakdown per cut
    per_frame = []
    for _ in range(blocks):
        policy = make_policy(name, _env(part, "network-change", frames))
        start = time.perf_counter()
        for ctx in ctxs:
            action = policy.select(ctx)
            policy.update(action, feedback[action.cut])
        per_frame.append((time.perf_counter() - start) / frames * 1e6)
    return statistics.median(per_frame)


def frames_per_second(part: Any, scenario: str, frames: int) -> float:
    env = _env(part, scenario, frames)
    policy = make_policy("mulinucb", env)
    start = time.perf_counter()
    run_policy(env, policy, frames)
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    part = partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))
    assert part.num_cuts == 23
    decisions = {n: decision_microseconds(part, n, args.frames, args.blocks) for n in TIMED}
    speed = {s: frames_per_second(part, s, args.frames) for s in SCENARIOS}
    if args.json:
        print(json.dumps({"select_update_us": decisions, "sim_frames_per_s": speed}, indent=2))
        return
    console = Console()
    table = Table(
        title=f"select + update per frame, VGG16 (P + 1 = 23, d = 7), median of "
        f"{args.blocks} x {args.frames} frames"
    )
    table.add_column("policy")
    table.add_column("µs / frame", justify="right")
    for name, us in decisions.items():
        table.add_row(name, f"{us:.1f}")
    console.print(table)
    sim = Table(title="simulated frames per second (μLinUCB, environment and regret included)")
    sim.add_column("scenario")
    sim.add_column("frames / s", justify="right")
    for name, fps in speed.items():
        sim.add_row(name, f"{fps:,.0f}")
    console.print(sim)


if __name__ == "__main__":
    main()
