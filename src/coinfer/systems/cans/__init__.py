"""CANS (Wu, Zhang, Lin, Xu, Liu, arXiv 2606.09175): many devices sharing one edge learn the cut
together — FedLinUCB-DW, grouped by device type, warm-started from offline experience. Its
worlds are fleets (``worlds``, run by ``fleet``), ``live`` joins a device's group on the edge,
``experiment`` the ablations and scales, ``demo`` a cooperating pair against a lone one."""

from coinfer.systems.base import System
from coinfer.systems.cans import live

SYSTEM = System(
    "cans",
    "Wu, Zhang, Lin, Xu, Liu, CANS, arXiv 2606.09175 (2026)",
    ("noncoop", "fedlinucb", "fedlinucb-d", "fedlinucb-dw", "fedlinucb-dw-periodic", "fedlinucb-w"),
    "coinfer.systems.cans.experiment:run",
    live=live.prepare,
    demo_ref="coinfer.systems.cans.demo:SPEC",
    parallel=True,
)
