"""What a paper's system is, as one bundle: the policies it brings (by their registry names), its
experiment, its live recipe (what a device of its policies must know or join before its first
frame) and its demo — a spec of what runs side by side, what the user should expect, and a
result that computes its own table, verdict and plot. ``systems.registry`` lists them;
``coinfer experiment NAME`` and ``coinfer demo --system NAME`` read it, so no command switches
on a system's name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from coinfer.defaults import LATENCY_REQ_S, RTT_S
from coinfer.errors import BadValueError
from coinfer.report import ExperimentResult
from coinfer.systems.verdicts import Verdict

if TYPE_CHECKING:
    from coinfer.assembly import DeviceSetup
    from coinfer.device.endpoint import Endpoint
    from coinfer.device.member import RemoteGroup
    from coinfer.device.records import FrameRecord
    from coinfer.latency.link import Link
    from coinfer.policies.experience import Experience

Progress = Callable[[str, int, int], None]  # (what, done, total)


class JobRunner(Protocol):
    """Runs independent jobs — ``func(*job)`` for every job — and returns their results in the
    jobs' order (``apps.engine``: local processes or Ray; ``serial_jobs`` here)."""

    def __call__(
        self,
        func: Callable[..., Any],
        jobs: Sequence[tuple[Any, ...]],
        progress: Progress | None = None,
        label: str = "jobs",
    ) -> list[Any]: ...


def serial_jobs(
    func: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    progress: Progress | None = None,
    label: str = "jobs",
) -> list[Any]:
    """Every job in turn, in this process."""
    results = []
    for done, job in enumerate(jobs, start=1):
        results.append(func(*job))
        if progress is not None:
            progress(label, done, len(jobs))
    return results


@dataclass(frozen=True)
class ExperimentContext:
    """Where an experiment writes (``out_dir``: its PNGs; the table is written by the caller),
    how big it is, whom it tells its progress, and what runs its independent jobs."""

    out_dir: Path
    quick: bool = False
    progress: Progress | None = None
    jobs: JobRunner = serial_jobs

    def tick(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)


@dataclass(frozen=True)
class LiveRequest:
    """What a live run was asked beyond its frames, for the systems whose policies need it:
    the link (a trace, for Edgent's bandwidth states), a latency requirement, a federated
    learner's group, experience and feature set."""

    link: Link | None = None
    trace: str | None = None
    trace_scale: float = 1.0
    latency_req_s: float | None = None
    group: str | None = None
    experience: Experience | None = None
    link_feature: bool = True


@dataclass
class LivePrep:
    """What a system's live recipe hands a device before its first frame: what its policy's
    Knowledge adds, and a group on the edge to sync with (federated learners)."""

    fields: dict[str, Any] = field(default_factory=dict)
    group: RemoteGroup | None = None


LiveRecipe = Callable[["DeviceSetup", str, "Endpoint", LiveRequest], LivePrep]


def no_recipe(setup: DeviceSetup, policy: str, edge: Endpoint, request: LiveRequest) -> LivePrep:
    """A policy that needs nothing beyond what every device knows."""
    if request.group is not None or request.experience is not None:
        raise BadValueError(
            f"--group and --experience are for the federated policies, not {policy}"
        )
    return LivePrep()


@dataclass(frozen=True)
class DemoConfig:
    """A demo as asked (``coinfer demo``): None takes the system's own default."""

    system: str = "ans"
    model: str | None = None
    device: str | None = None
    trace: str = "norway_bus_1"
    trace_scale: float | None = None
    rtt_s: float = RTT_S
    duration_s: float = 50.0
    slowdown: float = 30.0  # ans: the edge, halfway through
    latency_req_s: float = LATENCY_REQ_S  # edgent
    max_frames: int = 1000


class DemoHooks(Protocol):
    """What a running demo tells whoever shows it (the CLI's live table, stage lines)."""

    def frame(self, device: str, record: FrameRecord) -> None: ...

    def task(self, device: str, done: int, total: int) -> None: ...

    def stage(self, text: str) -> None: ...


@dataclass
class DemoRun:
    """A demo's outcome: every device's frames (by the name it is shown under), where known
    whether each answer was right, and warnings; each system's subclass computes its own
    table, verdict and plot from these numbers."""

    spec: DemoSpec
    config: DemoConfig
    records: dict[str, list[FrameRecord]] = field(default_factory=dict)
    correct: dict[str, list[bool | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. a host too loaded to tell
    policies: dict[str, Any] = field(default_factory=dict)  # each device's policy, as it ended

    def setting(self, key: str) -> Any:
        """The config's ``key``, else the system's default for it."""
        value = getattr(self.config, key)
        return self.spec.defaults[key] if value is None else value

    def link_spec(self) -> dict[str, Any]:
        """The link the devices saw, as the JSON records it."""
        return {
            "trace": self.config.trace,
            "trace_scale": self.setting("trace_scale"),
            "rtt_s": self.config.rtt_s,
        }

    def rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def verdict(self) -> Verdict:
        raise NotImplementedError

    def plot(self, path: Path) -> Path:
        raise NotImplementedError

    def details(self) -> list[str]:
        """Lines the CLI prints after the verdict."""
        return []

    def document(self) -> dict[str, Any]:
        """What the JSON holds beyond the rows and the verdict."""
        return {}


@dataclass(frozen=True)
class DemoSpec:
    """What a system's demo runs: the devices side by side (the names they are shown by), the
    defaults it runs on (model, device class, trace scale), what the user should expect, and
    the run itself."""

    devices: tuple[str, ...]
    defaults: dict[str, Any]
    expect: str
    run: Callable[[DemoConfig, DemoHooks], DemoRun]
    check: Callable[[DemoConfig], None] = lambda config: None  # a config it cannot run


def _resolve(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(import_module(module), name)


@dataclass(frozen=True)
class System:
    """One paper's system. Its experiment and demo are named (``module:attribute``), imported
    when asked for: a device that only runs frames loads the live recipe alone, not the plots
    and models the experiment needs."""

    name: str
    title: str  # the paper, as docs cite it
    policies: tuple[str, ...]  # the registry's names it brings
    experiment_ref: str  # its ``run(ExperimentContext) -> ExperimentResult``
    live: LiveRecipe = no_recipe
    demo_ref: str | None = None  # its ``DemoSpec``
    parallel: bool = False  # its experiment's independent jobs run on an engine (local, ray)

    def experiment(self, context: ExperimentContext) -> ExperimentResult:
        run: Callable[[ExperimentContext], ExperimentResult] = _resolve(self.experiment_ref)
        return run(context)

    @property
    def demo(self) -> DemoSpec | None:
        return None if self.demo_ref is None else _resolve(self.demo_ref)
