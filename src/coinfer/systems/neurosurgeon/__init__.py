"""Neurosurgeon (Kang et al., ASPLOS 2017): predict every cut's latency (or the device's energy)
from per-layer-type regressions, cut at the argmin; online, the bandwidth estimate follows the
link. Its policies run in every world; its experiment sweeps the link per zoo model."""

from coinfer.systems.base import System

SYSTEM = System(
    "neurosurgeon",
    "Kang et al., Neurosurgeon, ASPLOS 2017",
    ("neurosurgeon", "neurosurgeon-static"),
    "coinfer.systems.neurosurgeon.experiment:run",
)
