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
from typing import Any

import torch
from torch import nn

from coinfer.defaults import EDGE_CLASS, SIM_DEVICE_CLASS
from coinfer.graph.partitioning import Partitioning, partition
from coinfer.latency.devices import DeviceModel, resolve_device
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCostModel
from coinfer.latency.profiler import profile_ops
from coinfer.policies.edgent import ExitPath, exit_paths
from coinfer.policies.registry import Knowledge
from coinfer.zoo.registry import shipped_exit_accuracy
from coinfer.zoo.spec import ModelSpec


@dataclass
class ModelSetup:
    """A model as both sides run it: its partitioning, example inputs, and — for a multi-exit
    model with known per-exit accuracy — each exit's path."""

    name: str
    net: nn.Module
    part: Partitioning
    inputs: tuple[torch.Tensor, ...]
    exits: list[ExitPath] = field(default_factory=list)
    spec: ModelSpec | None = None

    def path(self, exit: int | None) -> Partitioning:
        if exit is None:
            return self.part
        return next(p.part for p in self.exits if p.exit == exit)


def load_model(model: str | ModelSpec, granularity: str = "layer") -> ModelSetup:
    """``model`` (a zoo name, torchvision:NAME, module:factory, or a full ``ModelSpec``: factory
    arguments, input shapes, a weights file) built as ``ModelSpec.build`` does, partitioned; a
    multi-exit model whose trained weights ship with their exits' accuracy (the zoo says which)
    has its exits partitioned along their paths."""
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

    def exit_halves(self) -> dict[int, tuple[Partitioning, list[float]]]:
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
) -> DeviceSetup:
    """Resolve the device and edge classes (``host`` and ``host/N`` profile this machine once,
    over every path of the model) and the device's front time at every cut. A device that
    runs its fronts elsewhere than torch here (a bundle in ONNX Runtime) gives its own
    ``device_profile`` of per-op seconds for ``host``; the edge's stays torch's."""
    measured: dict[str, float] = {}

    def host_profile() -> dict[str, float]:
        if not measured:
            measured.update(profile_ops(model.part, model.inputs))
            for p in model.exits:  # exits share their trunk layers, and those share names
                measured.update(profile_ops(p.part, model.inputs))
        return measured

    dev = resolve_device(device, device_profile or host_profile)
    edg = resolve_device(edge, host_profile)
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
