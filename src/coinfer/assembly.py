"""A device and its edge from names — the one setup that ``plan``, ``simulate``, ``run`` and
the demo share: the model (partitioned, with each exit's path for a multi-exit model), the
device and edge classes (this host profiled once, only if a class needs it), the device's
front time at every cut of every path, and from these the ``Knowledge`` policies are built
from (``policies.registry``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from coinfer.graph.partition import Partitioning, partition
from coinfer.latency.devices import DeviceModel, resolve_device
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCostModel
from coinfer.latency.profiler import profile_ops
from coinfer.policies.edgent import ExitPath
from coinfer.policies.registry import Knowledge
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


def exit_accuracies(name: str) -> list[float] | None:
    """Held-out per-exit accuracy of a zoo model that ships trained multi-exit weights."""
    if name != "branchy_alexnet":
        return None
    from coinfer.zoo.training import load_trained

    return [float(a) for a in load_trained()[1]["exit_accuracy"]]


def load_model(model: str | ModelSpec, granularity: str = "layer") -> ModelSetup:
    """``model`` (a zoo name, torchvision:NAME, module:factory, or a full ``ModelSpec``: factory
    arguments, input shapes, a weights file) built as ``ModelSpec.build`` does, partitioned; a
    multi-exit model's exits partitioned along their paths."""
    spec = ModelSpec.of(model)
    inputs = spec.example_inputs()
    net = spec.build()
    part = partition(net, inputs, granularity=granularity)
    exits: list[ExitPath] = []
    accuracies = exit_accuracies(spec.name) if spec.weights is None else None
    if accuracies is not None:
        from coinfer.policies.edgent import exit_paths

        exits = exit_paths(net, inputs, accuracies, granularity)  # type: ignore[arg-type]
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
        return Knowledge(
            self.model.part,
            self.front_s,
            self.device,
            self.edge,
            link.uplink.at(0.0),
            link.rtt_s,
            world=world,
            exits=self.model.exits,
            **fields,
        )

    def exit_halves(self) -> dict[int, tuple[Partitioning, list[float]]]:
        """Each exit's path and front times, as the device client takes them."""
        return {p.exit: (p.part, self.exit_front_s[p.exit]) for p in self.model.exits}


def device_setup(model: ModelSetup, device: str, edge: str) -> DeviceSetup:
    """Resolve the device and edge classes (``host`` and ``host/N`` profile this machine once,
    over every path of the model) and the device's front time at every cut."""
    measured: dict[str, float] = {}

    def host_profile() -> dict[str, float]:
        if not measured:
            measured.update(profile_ops(model.part, model.inputs))
            for p in model.exits:  # exits share their trunk layers, and those share names
                measured.update(profile_ops(p.part, model.inputs))
        return measured

    dev = resolve_device(device, host_profile)
    edg = resolve_device(edge, host_profile)
    front = list(CutCostModel(model.part, dev, edg).device_s)
    exit_front = {p.exit: list(CutCostModel(p.part, dev, edg).device_s) for p in model.exits}
    return DeviceSetup(model, device, edge, dev, edg, front, exit_front)
