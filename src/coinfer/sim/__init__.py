"""The simulated world: links, edge load, one device (more devices to come)."""

from coinfer.latency.traces import markov_bandwidth, step_bandwidth
from coinfer.sim.env import SimEnv, constant_load, step_load
from coinfer.sim.scoring import RunStats, run_policy

__all__ = [
    "RunStats",
    "SimEnv",
    "constant_load",
    "markov_bandwidth",
    "run_policy",
    "step_bandwidth",
    "step_load",
]
