"""`coinfer simulate`: one simulated device, its policies side by side on the same world — the
policies decide what kind of world it is: cuts (the ANS scenarios and traces, scored against the
Oracle), an exit and a cut (Edgent over a trace, the held-out digits as frames) or stage by
stage (optimal stopping over a fading channel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coinfer.defaults import DISCOUNT, EDGE_CLASS, LATENCY_REQ_S, NOISE, SIM_DEVICE_CLASS
from coinfer.errors import BadValueError
from coinfer.latency.channels import CHANNELS
from coinfer.policies import registry
from coinfer.sim.compare import POLICIES
from coinfer.systems.ans.simulate import Progress, Simulation, simulate
from coinfer.systems.edgent.simulate import simulate_edgent
from coinfer.systems.stopping.simulate import simulate_stopping
from coinfer.zoo.spec import ModelSpec

EDGENT_TRACE = "norway_bus_1"  # the trace Edgent's policies run over when none is given


@dataclass(frozen=True)
class SimulateConfig:
    """A simulation as asked, checked on creation: policies that decide the same kind of thing
    (a cut, an exit and a cut, or stage by stage), and the world's settings."""

    model: ModelSpec
    policies: tuple[str, ...] = POLICIES
    scenario: str | None = None  # default: stationary, or trace when a trace is given
    frames: int = 2000
    seed: int = 0
    trace: str | None = None
    trace_scale: float = 1.0
    device: str = SIM_DEVICE_CLASS
    edge: str = EDGE_CLASS
    noise: float = NOISE
    discount: float = DISCOUNT
    video: Path | None = None
    latency_req_s: float = LATENCY_REQ_S
    channel: str = "rayleigh"
    snr_db: float = 10.0
    time_weight: float = 1.0
    kind: str = field(init=False, default="cut")

    def __post_init__(self) -> None:
        kinds = {registry.check_world(n, "sim").kind for n in self.policies}
        if self.channel not in CHANNELS:
            raise BadValueError(f"--channel must be rayleigh or rician, not {self.channel!r}")
        if len(kinds) > 1:
            raise BadValueError(
                "give policies that decide the same thing (coinfer policies): "
                "cuts, exit+cut (Edgent) or stages (stopping), not a mix"
            )
        if not 0 < self.discount <= 1:
            raise BadValueError(f"--discount must be in (0, 1], got {self.discount}")
        object.__setattr__(self, "kind", kinds.pop() if kinds else "cut")
        if self.kind == "cut" and "oracle" not in self.policies:  # always, as the reference
            object.__setattr__(self, "policies", ("oracle", *self.policies))

    @property
    def world(self) -> str:
        return self.scenario or ("trace" if self.trace else "stationary")


@dataclass(frozen=True)
class Simulated:
    """A simulation's rows (one per policy), and for cuts the whole run (plot, regret)."""

    config: SimulateConfig
    rows: list[dict[str, Any]]
    run: Simulation | None = None


def run_simulation(config: SimulateConfig, progress: Progress | None = None) -> Simulated:
    c = config
    if c.kind == "exit+cut":
        rows = simulate_edgent(
            c.model,
            c.policies,
            c.frames,
            c.trace or EDGENT_TRACE,
            c.trace_scale,
            c.latency_req_s,
            c.seed,
            c.device,
            c.edge,
            c.noise,
        )
        return Simulated(c, rows)
    if c.kind == "stage":
        rows = simulate_stopping(
            c.model,
            c.policies,
            c.frames,
            c.channel,
            c.snr_db,
            c.time_weight,
            c.seed,
            c.device,
            c.edge,
        )
        return Simulated(c, rows)
    sim = simulate(
        c.model,
        c.world,
        c.policies,
        c.frames,
        c.seed,
        c.device,
        c.edge,
        c.trace,
        c.trace_scale,
        c.noise,
        c.discount,
        video=c.video,
        progress=progress,
    )
    return Simulated(c, sim.rows(), sim)
