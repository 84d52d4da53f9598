"""Optimal-stopping model splitting with model placement (Yan, Bi, Zhang, IEEE TWC 2022): stage
by stage, whether to offload now or compute one more layer, under channel fading; how many
layers to store. ``simulate`` runs the rules task by task, ``live`` over a real edge layer by
layer, ``experiment`` the paper's comparisons, ``demo`` the optimal rule against its baselines."""

from coinfer.systems.base import System

SYSTEM = System(
    "stopping",
    "Yan, Bi, Zhang, Optimal Model Placement and Online Model Splitting, IEEE TWC 2022",
    ("stopping", "osla", "myopic", "fixed-split"),
    "coinfer.systems.stopping.experiment:run",
    demo_ref="coinfer.systems.stopping.demo:SPEC",
)
