"""What a bundle holds, as ``manifest.json`` says it: the model's inputs and outputs, and for
each path (the whole model, and each exit of an early-exit model) its fingerprint, its ops and
its cut table, with the ONNX file of every cut's front and back and how closely each matched
torch when it was exported.

This module imports neither torch nor onnx: a device that runs its fronts in ONNX Runtime reads
the manifest with it alone. A manifest is the user's file, so everything in it is checked when
it is read (``BadFileError`` naming the field), never trusted into an index or a shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coinfer.arrays import NUMPY_DTYPES
from coinfer.errors import BadFileError
from coinfer.output import dumps, strict

BUNDLE_KIND = "coinfer-bundle"
BUNDLE_SCHEMA = 1
MANIFEST = "manifest.json"
TOLERANCE = 1e-4  # fp32: an exported part within this relative error of torch is exact enough
# a part's state: ONNX written and matching; nothing to run (cut 0's front, the last cut's
# back); not exported (the exporter's reason); not asked for (--cuts)
PART_STATES = ("exported", "empty", "failed", "skipped")
MAX_DIMS = 8
MAX_ELEMENTS = 1 << 31
WIRE_DTYPES = tuple(NUMPY_DTYPES)


# a part's ONNX inputs and outputs are named by role: the exporter names its own values after
# aten ops (``relu``, ``add``), so a boundary tensor called ``relu`` would otherwise collide


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor a part takes or gives: what ONNX Runtime is fed and what the wire says."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype_name(self) -> str:
        return self.dtype


@dataclass(frozen=True)
class PartRecord:
    """One half of one cut: its ONNX file (relative to the bundle) and its error against torch
    on the example input, or why there is none."""

    state: str
    file: str | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    reason: str | None = None

    @property
    def runnable(self) -> bool:
        return self.state == "exported"


@dataclass(frozen=True)
class BundleCut:
    """A row of the cut table as the manifest holds it: ``graph.types.Cut``'s numbers, its
    boundary as named tensor specs, and its two parts (``bundle.view`` turns it into a
    ``Cut`` for the readers of a cut table)."""

    index: int
    name: str
    num_device_ops: int
    boundary: tuple[TensorSpec, ...]
    boundary_bytes: int
    device_macs: int
    edge_macs: int
    device_param_bytes: int
    edge_param_bytes: int
    features: Mapping[str, float]
    front: PartRecord
    back: PartRecord


@dataclass(frozen=True)
class BundlePath:
    """The whole model (``exit`` None) or one exit's path: what its fingerprint proves to the
    edge, its ops (what latency models predict from), its cuts, and how the last cut's
    boundary maps onto the outputs (``outputs_from_last``: output i is boundary entry
    ``outputs_from_last[i]``)."""

    exit: int | None
    fingerprint: str
    accuracy: float | None
    outputs: tuple[TensorSpec, ...]
    outputs_from_last: tuple[int, ...]
    cuts: tuple[BundleCut, ...]
    ops: tuple[Mapping[str, Any], ...] = ()

    @property
    def last(self) -> int:
        return len(self.cuts) - 1


@dataclass(frozen=True)
class Manifest:
    """Everything a bundle's device needs besides the ONNX files themselves."""

    model: Mapping[str, Any]
    granularity: str
    inputs: tuple[TensorSpec, ...]
    paths: tuple[BundlePath, ...]
    exporter: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.model["name"])

    def path(self, exit: int | None = None) -> BundlePath:
        for p in self.paths:
            if p.exit == exit:
                return p
        have = ", ".join("whole" if p.exit is None else f"exit {p.exit}" for p in self.paths)
        raise BadFileError(f"the bundle of {self.name} has no {exit=} path (it has: {have})")

    @property
    def exits(self) -> list[int]:
        return sorted(p.exit for p in self.paths if p.exit is not None)

    def document(self) -> dict[str, Any]:
        return strict({"kind": BUNDLE_KIND, "schema": BUNDLE_SCHEMA, **asdict(self)})

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST
        path.write_text(dumps(self.document(), indent=1))
        return path


class _Reader:
    """Reads one manifest, naming the field a bad value sits in."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> BadFileError:
        return BadFileError(
            f"{self.source}: {where} {what}; re-create the bundle with coinfer export"
        )

    def get(self, doc: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(doc, dict) or key not in doc:
            raise self.fail(where, f"has no {key!r}")
        value = doc[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
            raise self.fail(f"{where}.{key}", f"is {type(value).__name__}, not as expected")
        return value

    def count(self, doc: Any, key: str, where: str) -> int:
        value = self.get(doc, key, int, where)
        if value < 0:
            raise self.fail(f"{where}.{key}", "is negative")
        return int(value)

    def tensor(self, doc: Any, where: str) -> TensorSpec:
        name = self.get(doc, "name", str, where)
        shape = self.get(doc, "shape", list, where)
        if len(shape) > MAX_DIMS or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            raise self.fail(f"{where}.shape", f"{shape!r} is not a shape of positive sizes")
        if math.prod(shape) > MAX_ELEMENTS:
            raise self.fail(f"{where}.shape", f"{shape!r} is too large")
        dtype = self.get(doc, "dtype", str, where)
        if dtype not in WIRE_DTYPES:
            raise self.fail(f"{where}.dtype", f"{dtype!r} is not one of {', '.join(WIRE_DTYPES)}")
        return TensorSpec(name, tuple(shape), dtype)

    def tensors(self, doc: Any, key: str, where: str) -> tuple[TensorSpec, ...]:
        items = self.get(doc, key, list, where)
        return tuple(self.tensor(t, f"{where}.{key}[{i}]") for i, t in enumerate(items))

    def part(self, doc: Any, where: str) -> PartRecord:
        state = self.get(doc, "state", str, where)
        if state not in PART_STATES:
            raise self.fail(f"{where}.state", f"{state!r} is not one of {PART_STATES}")
        file = doc.get("file")
        if state == "exported":
            file = self.get(doc, "file", str, where)
            if Path(file).name != file or not file.endswith(".onnx"):
                raise self.fail(f"{where}.file", f"{file!r} is not a .onnx file of the bundle")
        abs_error, rel_error = (
            self.number(doc, k, where) for k in ("max_abs_error", "max_rel_error")
        )
        reason = doc.get("reason")
        return PartRecord(
            state,
            file if state == "exported" else None,
            abs_error,
            rel_error,
            reason if isinstance(reason, str) else None,
        )

    def number(self, doc: dict[str, Any], key: str, where: str) -> float | None:
        value = doc.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise self.fail(f"{where}.{key}", "is not a number")
        return None if value is None else float(value)

    def cut(self, doc: Any, index: int, where: str) -> BundleCut:
        if self.count(doc, "index", where) != index:
            raise self.fail(f"{where}.index", f"is not {index} (cuts are listed in order)")
        features = self.get(doc, "features", dict, where)
        if not all(isinstance(v, (int, float)) for v in features.values()):
            raise self.fail(f"{where}.features", "holds a value that is not a number")
        return BundleCut(
            index=index,
            name=self.get(doc, "name", str, where),
            num_device_ops=self.count(doc, "num_device_ops", where),
            boundary=self.tensors(doc, "boundary", where),
            boundary_bytes=self.count(doc, "boundary_bytes", where),
            device_macs=self.count(doc, "device_macs", where),
            edge_macs=self.count(doc, "edge_macs", where),
            device_param_bytes=self.count(doc, "device_param_bytes", where),
            edge_param_bytes=self.count(doc, "edge_param_bytes", where),
            features={str(k): float(v) for k, v in features.items()},
            front=self.part(self.get(doc, "front", dict, where), f"{where}.front"),
            back=self.part(self.get(doc, "back", dict, where), f"{where}.back"),
        )

    def path(self, doc: Any, where: str) -> BundlePath:
        exit = doc.get("exit") if isinstance(doc, dict) else None
        if exit is not None and (not isinstance(exit, int) or isinstance(exit, bool) or exit < 1):
            raise self.fail(f"{where}.exit", f"{exit!r} is neither null nor an exit 1, 2, ...")
        fp = self.get(doc, "fingerprint", str, where)
        try:
            bytes.fromhex(fp)
        except ValueError:
            raise self.fail(f"{where}.fingerprint", "is not hexadecimal") from None
        accuracy = doc.get("accuracy")
        if accuracy is not None and not isinstance(accuracy, (int, float)):
            raise self.fail(f"{where}.accuracy", "is not a number")
        rows = self.get(doc, "cuts", list, where)
        if len(rows) < 2:
            raise self.fail(f"{where}.cuts", "has fewer than two cuts")
        cuts = tuple(self.cut(c, i, f"{where}.cuts[{i}]") for i, c in enumerate(rows))
        outputs = self.tensors(doc, "outputs", where)
        order = self.get(doc, "outputs_from_last", list, where)
        last = len(cuts[-1].boundary)
        if len(order) != len(outputs) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < last for i in order
        ):
            raise self.fail(
                f"{where}.outputs_from_last", f"is not {len(outputs)} indices below {last}"
            )
        ops = self.get(doc, "ops", list, where)
        for i, op in enumerate(ops):
            self.get(op, "name", str, f"{where}.ops[{i}]")
            self.count(op, "macs", f"{where}.ops[{i}]")
        counts = [c.num_device_ops for c in cuts]
        if counts[0] != 0 or counts[-1] != len(ops) or counts != sorted(counts):
            raise self.fail(
                f"{where}.cuts",
                f"do not run 0 to {len(ops)} ops in order (num_device_ops {counts})",
            )
        return BundlePath(
            exit,
            fp,
            None if accuracy is None else float(accuracy),
            outputs,
            tuple(order),
            cuts,
            tuple(ops),
        )


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def read_manifest(folder: str | Path) -> Manifest:
    """The manifest of the bundle in ``folder`` (BadFileError naming what is missing or wrong)."""
    folder = Path(folder)
    source = folder / MANIFEST
    if not source.is_file():
        raise BadFileError(
            f"--bundle {str(folder)!r}: no {MANIFEST} there; make a bundle with "
            f"coinfer export MODEL --out {folder}"
        )
    try:
        doc = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadFileError(f"{source}: not a readable manifest ({exc})") from None
    reader = _Reader(source)
    if not isinstance(doc, dict) or doc.get("kind") != BUNDLE_KIND:
        raise reader.fail("the document", f"is not a {BUNDLE_KIND} manifest")
    if doc.get("schema") != BUNDLE_SCHEMA:
        raise reader.fail("schema", f"is {doc.get('schema')!r}, this coinfer reads {BUNDLE_SCHEMA}")
    model = reader.get(doc, "model", dict, "the document")
    reader.get(model, "name", str, "model")
    paths = reader.get(doc, "paths", list, "the document")
    found = tuple(reader.path(p, f"paths[{i}]") for i, p in enumerate(paths))
    if not any(p.exit is None for p in found):
        raise reader.fail("paths", "has no whole-model path (exit null)")
    exporter = doc.get("exporter")
    return Manifest(
        model,
        reader.get(doc, "granularity", str, "the document"),
        reader.tensors(doc, "inputs", "the document"),
        found,
        exporter if isinstance(exporter, dict) else {},
    )


def part_files(manifest: Manifest) -> Sequence[str]:
    """Every ONNX file the manifest names."""
    return sorted(
        {
            part.file
            for path in manifest.paths
            for cut in path.cuts
            for part in (cut.front, cut.back)
            if part.file is not None
        }
    )
