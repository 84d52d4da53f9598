"""A bundle's path as the device's readers take a partitioning (``graph.types.CutTable``):
its cuts, ops, outputs and fingerprint, made from the manifest without torch — what the device
client checks replies against, what the preflight compares with the edge, and what latency
models and policies plan on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinfer.arrays import NUMPY_DTYPES
from coinfer.bundle.manifest import BundlePath, Manifest, TensorSpec, read_manifest
from coinfer.graph.types import Cut, Op, TensorMeta


def _meta(spec: TensorSpec) -> TensorMeta:
    return TensorMeta(spec.shape, NUMPY_DTYPES[spec.dtype])  # type: ignore[arg-type]


def _tuples(value: Any) -> Any:
    """JSON's lists as the tuples the op records were made of."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _op(record: dict[str, Any]) -> Op:
    output = record.get("output")
    meta = None
    if isinstance(output, dict) and output.get("dtype") in NUMPY_DTYPES:
        meta = TensorMeta(tuple(output["shape"]), NUMPY_DTYPES[output["dtype"]])  # type: ignore[arg-type]
    return Op(
        index=int(record.get("index", 0)),
        name=str(record["name"]),
        layer=str(record.get("layer", "")),
        kind=str(record.get("kind", "other")),
        target=str(record.get("target", "")),
        input_shapes=_tuples(record.get("input_shapes") or []),
        output=meta,
        macs=int(record["macs"]),
        params=tuple(record.get("params") or ()),
        attrs=_tuples(record.get("attrs") or {}),
    )


class BundlePartition:
    """One path of a bundle (the whole model, or an exit's) as a cut table."""

    def __init__(self, path: BundlePath, inputs: Sequence[TensorSpec]) -> None:
        self.path = path
        self.cuts: list[Cut] = [
            Cut(
                index=c.index,
                name=c.name,
                num_device_ops=c.num_device_ops,
                boundary=tuple(b.name for b in c.boundary),
                boundary_shapes=tuple(b.shape for b in c.boundary),
                boundary_bytes=c.boundary_bytes,
                device_macs=c.device_macs,
                edge_macs=c.edge_macs,
                device_param_bytes=c.device_param_bytes,
                edge_param_bytes=c.edge_param_bytes,
                features=dict(c.features),
            )
            for c in path.cuts
        ]
        self.ops: tuple[Op, ...] = tuple(_op(dict(op)) for op in path.ops)
        self.outputs: tuple[TensorMeta, ...] = tuple(_meta(t) for t in path.outputs)
        self.fingerprint: bytes = bytes.fromhex(path.fingerprint)
        self.input_names: tuple[str, ...] = tuple(t.name for t in inputs)
        self.output_names: list[str] = [t.name for t in path.outputs]

    @property
    def last(self) -> int:
        return len(self.cuts) - 1

    @property
    def num_cuts(self) -> int:
        return len(self.cuts)

    def outputs_at_last_cut(self, boundary: Sequence[Any]) -> list[Any]:
        return [boundary[i] for i in self.path.outputs_from_last]


def partitions(manifest: Manifest) -> dict[int | None, BundlePartition]:
    """Every path of the bundle, by exit (None: the whole model)."""
    return {p.exit: BundlePartition(p, manifest.inputs) for p in manifest.paths}


@dataclass(frozen=True)
class BundleSource:
    """A bundle as a run names its model: the folder and what its manifest says of it."""

    folder: Path
    manifest: Manifest

    @classmethod
    def read(cls, folder: Path) -> BundleSource:
        return cls(folder, read_manifest(folder))

    @property
    def name(self) -> str:
        return self.manifest.name

    def describe(self) -> dict[str, Any]:
        return dict(self.manifest.model) | {"bundle": str(self.folder)}
