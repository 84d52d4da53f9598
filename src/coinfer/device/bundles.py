"""A device that runs a bundle (``coinfer export``) in ONNX Runtime, as ``assembly`` sets up
a torch one: the same ``ModelSetup`` and ``DeviceSetup``, made from the manifest with no torch
— every path's cut table, seeded example inputs of its shapes, the exits whose accuracy it
records, a runner per path — so the one loop, the client and the policies take it as they
take a torch model."""

from __future__ import annotations

from pathlib import Path

from coinfer.assembly import DeviceSetup, ModelSetup, device_setup
from coinfer.bundle.runtime import OnnxBundle, bundle_profile, example_inputs
from coinfer.bundle.view import partitions
from coinfer.defaults import EDGE_CLASS
from coinfer.device.runners import OnnxRunner, Runner
from coinfer.policies.edgent import ExitPath


def bundle_model(fronts: OnnxBundle) -> ModelSetup:
    """The model a bundle holds, as a device that runs it in ONNX Runtime sees it (no torch):
    the manifest's paths as cut tables, seeded example inputs of its declared shapes, each
    exit whose accuracy the bundle records, and a runner per path."""
    paths = partitions(fronts.manifest)
    exits = [
        ExitPath(p.exit, p.accuracy, paths[p.exit])
        for p in fronts.manifest.paths
        if p.exit is not None and p.accuracy is not None
    ]
    runners: dict[int | None, Runner] = {None: OnnxRunner(fronts)}
    runners |= {e.exit: OnnxRunner(fronts, e.exit) for e in exits}
    inputs = tuple(example_inputs(fronts.manifest.inputs))
    return ModelSetup(fronts.manifest.name, None, paths[None], inputs, exits, runners=runners)


def bundle_setup(
    folder: Path, device: str, edge: str = EDGE_CLASS, threads: int | None = None
) -> DeviceSetup:
    """A bundle's model on ``device`` with ``edge``: ``host`` (for either) is this machine
    running the bundle's fronts in ONNX Runtime (timed once, only if a class asks)."""
    fronts = OnnxBundle(folder, threads)
    measured: dict[str, float] = {}

    def profile() -> dict[str, float]:
        if not measured:
            measured.update(bundle_profile(fronts))
        return measured

    return device_setup(bundle_model(fronts), device, edge, profile, edge_profile=profile)
