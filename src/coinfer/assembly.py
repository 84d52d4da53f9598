"""A device and its edge from names, assembled once for every world and command: the model
(partitioned, each exit's path for a multi-exit model), this host profiled once — only if a
class needs it, over every path —, the device and edge classes, the device's front time at every
cut of every path, and from these what the device knows (``Knowledge``, ``policies.registry``).
``plan``, ``simulate``, ``fleet``, ``run``, ``serve``, the demos and the experiments all start
here; the classes they default to are ``coinfer.defaults``'."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from coinfer.defaults import EDGE_CLASS, SIM_DEVICE_CLASS
from coinfer.errors import BadValueError
from coinfer.latency.devices import DeviceModel, resolve_device
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCostModel
from coinfer.policies.edgent import ExitPath
from coinfer.policies.registry import Knowledge

if TYPE_CHECKING:
    from torch import nn

    from coinfer.graph.partitioning import Partitioning
    from coinfer.graph.types import CutTable, Runner
    from coinfer.zoo.spec import ModelSpec


@dataclass
class ModelSetup:
    """A model as both sides run it: its partitioning, example inputs, and — for a multi-exit
    model with known per-exit accuracy — each exit's path."""

    name: str
    net: nn.Module | None  # None: the device runs a bundle (``runners``), not torch
    part: CutTable
    inputs: tuple[Any, ...]
    exits: list[ExitPath] = field(default_factory=list)
    spec: ModelSpec | None = None
    runners: dict[int | None, Runner] = field(default_factory=dict)  # empty: torch's own

    def path(self, exit: int | None) -> CutTable:
        if exit is None:
            return self.part
        return next(p.part for p in self.exits if p.exit == exit)

    @property
    def torch_net(self) -> nn.Module:
        """The torch model, for what only torch can do (tracing, exporting, timing it)."""
        if self.net is None:
            raise BadValueError(f"{self.name} runs from a bundle: this needs the torch model")
        return self.net

    def torch_path(self, exit: int | None = None) -> Partitioning:
        """A path as torch partitioned it (its graph, its splits)."""
        from coinfer.graph.partitioning import Partitioning

        part = self.path(exit)
        if not isinstance(part, Partitioning):
            raise BadValueError(f"{self.name} runs from a bundle: this needs the torch model")
        return part


def load_model(model: str | ModelSpec, granularity: str = "layer") -> ModelSetup:
    """``model`` (a zoo name, torchvision:NAME, module:factory, or a full ``ModelSpec``: factory
    arguments, input shapes, a weights file) built as ``ModelSpec.build`` does, partitioned; a
    multi-exit model whose trained weights ship with their exits' accuracy (the zoo says which)
    has its exits partitioned along their paths."""
    from coinfer.graph.partitioning import partition
    from coinfer.policies.edgent import exit_paths
    from coinfer.zoo.registry import shipped_exit_accuracy
    from coinfer.zoo.spec import ModelSpec

    spec = ModelSpec.of(model)
    inputs = spec.example_inputs()
    net = spec.build()
    part = partition(net, inputs, granularity=granularity, leaf_modules=spec.leaf)
    shipped = spec.weights is None and not spec.kwargs  # the zoo's trained weights
    accuracies = shipped_exit_accuracy(spec.name) if shipped else None
    exits = [] if accuracies is None else exit_paths(net, inputs, accuracies, granularity)  # type: ignore[arg-type]
    return ModelSetup(spec.name, net, part, inputs, exits, spec)


@dataclass
class DeviceSetup:
    """A model on a device class with an edge class: the front times the device pads to."""

    model: ModelSetup
    device_name: str
    edge_name: str
    device: DeviceModel
    edge: DeviceModel
    front_s: list[float]
    exit_front_s: dict[int, list[float]]

    def knowledge(self, world: str, link: Link, **fields: Any) -> Knowledge:
        """What this device knows at the start of a run over ``link`` in ``world``."""
        return Knowledge.starting(
            self.model.part,
            self.front_s,
            self.device,
            self.edge,
            link,
            world,
            exits=self.model.exits,
            **fields,
        )

    def exit_halves(self) -> dict[int, tuple[CutTable, list[float]]]:
        """Each exit's path and front times, as the device client takes them."""
        return {p.exit: (p.part, self.exit_front_s[p.exit]) for p in self.model.exits}

    def cost_model(self) -> CutCostModel:
        """Every cut's predicted device and edge time and what it sends (the whole model)."""
        return CutCostModel(self.model.part, self.device, self.edge)


def device_setup(
    model: ModelSetup,
    device: str = SIM_DEVICE_CLASS,
    edge: str = EDGE_CLASS,
    device_profile: Callable[[], dict[str, float]] | None = None,
    edge_profile: Callable[[], dict[str, float]] | None = None,
) -> DeviceSetup:
    """Resolve the device and edge classes (``host`` and ``host/N`` profile this machine once,
    over every path of the model) and the device's front time at every cut. A device that
    runs its fronts elsewhere than torch here (a bundle in ONNX Runtime) gives its own
    ``device_profile`` of per-op seconds for ``host`` (and ``edge_profile``, where torch is not
    there to time the edge's halves either)."""
    measured: dict[str, float] = {}

    def host_profile() -> dict[str, float]:
        from coinfer.latency.profiler import profile_ops

        if not measured:
            measured.update(profile_ops(model.torch_path(), model.inputs))
            for p in model.exits:  # exits share their trunk layers, and those share names
                measured.update(profile_ops(model.torch_path(p.exit), model.inputs))
        return measured

    dev = resolve_device(device, device_profile or host_profile)
    edg = resolve_device(edge, edge_profile or host_profile)
    front = list(CutCostModel(model.part, dev, edg).device_s)
    exit_front = {p.exit: list(CutCostModel(p.part, dev, edg).device_s) for p in model.exits}
    return DeviceSetup(model, device, edge, dev, edg, front, exit_front)


def assemble(
    model: str | ModelSpec,
    device: str = SIM_DEVICE_CLASS,
    edge: str = EDGE_CLASS,
    granularity: str = "layer",
    device_profile: Callable[[], dict[str, float]] | None = None,
) -> DeviceSetup:
    """``model`` on ``device`` with ``edge``, from names: ``device_setup(load_model(...))``."""
    return device_setup(load_model(model, granularity), device, edge, device_profile)


@lru_cache(maxsize=16)
def zoo_setup(model: str, device: str = SIM_DEVICE_CLASS, edge: str = EDGE_CLASS) -> DeviceSetup:
    """``assemble`` for a zoo model on published classes, kept: the fleets and the experiments
    ask for the same few many times (never for ``host``: its profile is a measurement)."""
    if device.startswith("host") or edge.startswith("host"):
        raise ValueError("zoo_setup keeps setups of published classes only: use assemble()")
    return assemble(model, device, edge)
