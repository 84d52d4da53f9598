"""Edgent (Li, Zhou, Chen, MECOMM 2018 / IEEE TWC 2019): the exit and the cut together — the
most accurate exit whose best cut meets a latency requirement; dynamically, bandwidth states and
change-point detection. ``simulate`` runs its policies over a trace, ``experiment`` the paper's
figures, ``live`` what a device learns its states from, ``demo`` dynamic against static."""

from coinfer.systems.base import System
from coinfer.systems.edgent import live

SYSTEM = System(
    "edgent",
    "Li, Zhou, Chen, Edgent, MECOMM 2018 / IEEE TWC 2019",
    ("edgent", "edgent-dynamic", "edgent-device-only", "edgent-oracle"),
    "coinfer.systems.edgent.experiment:run",
    live=live.prepare,
    demo_ref="coinfer.systems.edgent.demo:SPEC",
)
