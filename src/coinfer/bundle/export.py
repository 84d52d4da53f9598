"""``coinfer export``: every cut's front (and back) as ONNX, each checked against torch on the
example input, with the manifest a device without PyTorch runs from.

The parts are exported one by one (torch.onnx's dynamo exporter), so one op the exporter cannot
translate costs only the parts that hold it, and the manifest lists each of those with the
exporter's reason. The whole-model path's last front (the model entirely on the device) is
always exported: it is what a device falls back on when the edge does not answer.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from coinfer.assembly import load_model
from coinfer.bundle.manifest import (
    MANIFEST,
    TOLERANCE,
    BundleCut,
    BundlePath,
    Manifest,
    PartRecord,
    TensorSpec,
)
from coinfer.bundle.onnx_files import WEIGHTS_FILE, SharedWeights
from coinfer.errors import BadFileError, BadValueError
from coinfer.graph.outputs import output_tensors
from coinfer.graph.partitioning import Partitioning
from coinfer.graph.types import BOUNDARY, INPUT, OUTPUT, Op, TensorMeta
from coinfer.policies.edgent import exit_partitions
from coinfer.zoo.spec import ModelSpec

PART_CHOICES = ("both", "fronts", "backs")
Progress = Callable[[str, int, int], None]  # what, parts done, parts in all
REASON_CHARS = 400
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class ExportConfig:
    """What ``coinfer export`` was asked: the model, where, which cuts (None: all)."""

    model: ModelSpec
    out: Path
    cuts: tuple[int, ...] | None = None
    granularity: str = "layer"
    parts: str = "both"  # fronts (a device's bundle), backs (an edge's) or both

    def __post_init__(self) -> None:
        if self.parts not in PART_CHOICES:
            raise BadValueError(
                f"--parts {self.parts!r}: one of {', '.join(PART_CHOICES)} (fronts for a "
                f"device, backs for a server, both)"
            )

    @property
    def fronts(self) -> bool:
        return self.parts in ("fronts", "both")

    @property
    def backs(self) -> bool:
        return self.parts in ("backs", "both")


class _Flat(nn.Module):
    """A back half returning its outputs flat, in the order they travel: ONNX outputs are a
    list, and the wire and the manifest name them in that order."""

    def __init__(self, back: nn.Module) -> None:
        super().__init__()
        self.back = back

    def forward(self, *boundary: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(output_tensors(self.back(*boundary)))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's own progress lines and warnings are not the user's concern: the
    manifest records what came of each part."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "torch.export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _spec(name: str, meta: TensorMeta) -> TensorSpec:
    return TensorSpec(name, tuple(meta.shape), meta.dtype_name)


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def _op_record(op: Op) -> dict[str, Any]:
    output = (
        None
        if op.output is None
        else {
            "shape": list(op.output.shape),
            "dtype": op.output.dtype_name,
        }
    )
    return {
        "index": op.index,
        "name": op.name,
        "layer": op.layer,
        "kind": op.kind,
        "target": op.target,
        "input_shapes": _plain(op.input_shapes),
        "output": output,
        "macs": op.macs,
        "params": list(op.params),
        "attrs": _plain(dict(op.attrs)),
    }


def _errors(got: Sequence[np.ndarray], want: Sequence[torch.Tensor]) -> tuple[float, float]:
    """The largest absolute error, and it relative to the largest magnitude of its tensor
    (integer tensors must match exactly: any difference is an infinite relative error)."""
    worst_abs = worst_rel = 0.0
    for a, t in zip(got, want, strict=True):
        b = t.detach().numpy()
        if a.shape != b.shape:
            return float("inf"), float("inf")
        if not b.size:
            continue
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        scale = float(np.max(np.abs(b.astype(np.float64))))
        exact = not np.issubdtype(b.dtype, np.floating)
        rel = (float("inf") if diff else 0.0) if exact or not scale else diff / scale
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
    return worst_abs, worst_rel


def _reason(exc: BaseException) -> str:
    """The innermost cause's first line (the exporter wraps the op it could not translate in
    two layers of advice), without terminal colours."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [_ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    text = f"{type(exc).__name__}: {next((line for line in lines if line), '')}"
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


class _Exporter:
    """Writes one bundle's parts into ``out``, sharing one weights file."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.weights = SharedWeights(out)

    def part(
        self,
        module: nn.Module,
        args: Sequence[torch.Tensor],
        want: Sequence[torch.Tensor],
        names: tuple[Sequence[str], Sequence[str]],
        file: str,
    ) -> PartRecord:
        """Export ``module`` (in eval mode) on ``args`` to ``file``, run it in ONNX Runtime,
        compare with ``want`` (what torch computed on ``args``)."""
        try:
            with _quiet():
                program = torch.onnx.export(
                    module,
                    tuple(args),
                    dynamo=True,
                    verbose=False,
                    input_names=list(names[0]),
                    output_names=list(names[1]),
                    external_data=False,
                )
            assert program is not None
            proto = program.model_proto
            self.weights.externalise(proto)
            onnx.save(proto, str(self.out / file))
            session = ort.InferenceSession(str(self.out / file))
            feeds = {n: t.detach().numpy() for n, t in zip(names[0], args, strict=True)}
            got = session.run(list(names[1]), feeds)
        except Exception as exc:  # the exporter's or the runtime's reason is the record
            (self.out / file).unlink(missing_ok=True)
            return PartRecord("failed", reason=_reason(exc))
        worst_abs, worst_rel = _errors(got, want)
        if worst_rel > TOLERANCE:
            (self.out / file).unlink(missing_ok=True)
            return PartRecord(
                "failed",
                max_abs_error=worst_abs,
                max_rel_error=worst_rel,
                reason=f"ONNX Runtime differs from torch by {worst_rel:.3g} relative "
                f"(more than {TOLERANCE:g})",
            )
        return PartRecord("exported", file, worst_abs, worst_rel)


def _wanted(config: ExportConfig, paths: Sequence[Partitioning]) -> list[set[int]]:
    """Per path, the cuts to export: those asked for that it has, and always the whole
    path's last (the fallback)."""
    if config.cuts is None:
        return [set(range(p.num_cuts)) for p in paths]
    widest = max(p.last for p in paths)
    bad = [k for k in config.cuts if not 0 <= k <= widest]
    if bad:
        raise BadValueError(
            f"--cuts {','.join(map(str, bad))}: {config.model.name} has cuts 0..{widest} "
            f"(see coinfer inspect {config.model.name}); give --cuts all or some of them"
        )
    return [{k for k in config.cuts if k <= p.last} | {p.last} for p in paths]


def _prepare(out: Path) -> None:
    """An empty folder, or a bundle's (whose old parts go): never anything else of the user's."""
    if out.exists() and not out.is_dir():
        raise BadFileError(f"--out {str(out)!r} is a file: give a folder for the bundle")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise BadFileError(
                f"--out {str(out)!r} holds files and no bundle: give an empty or new folder"
            )
        for old in [*out.glob("*.onnx"), out / WEIGHTS_FILE, out / MANIFEST]:
            old.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def export_bundle(config: ExportConfig, progress: Progress | None = None) -> Manifest:
    """Export every asked cut of every path of ``config.model`` into ``config.out``."""
    setup = load_model(config.model, config.granularity)
    accuracy: dict[int | None, float] = {p.exit: p.accuracy for p in setup.exits}
    exits = exit_partitions(setup.torch_net, setup.inputs, config.granularity)
    paths: list[tuple[int | None, Partitioning]] = [(None, setup.torch_path()), *exits.items()]
    wanted = _wanted(config, [p for _, p in paths])
    model_inputs = setup.part.input_names
    _prepare(config.out)
    exporter = _Exporter(config.out)
    per_cut = config.fronts + config.backs  # parts exported at each asked cut
    total = sum(per_cut * len(w) for w in wanted)
    done = 0
    started = time.perf_counter()
    records = []
    try:
        for (exit, part), cuts in zip(paths, wanted, strict=True):
            prefix = "" if exit is None else f"exit{exit}_"
            rows = []
            for cut in part.cuts:
                asked = cut.index in cuts
                halves = _halves(
                    exporter, config, part, cut.index, asked, setup.inputs, prefix, model_inputs
                )
                done += per_cut if asked else 0
                if progress is not None and asked:
                    progress(f"exporting {setup.name}", done, total)
                rows.append(_row(part, cut.index, *halves))
            records.append(_path(part, exit, accuracy.get(exit), rows))
    finally:
        exporter.weights.close()
    manifest = Manifest(
        config.model.describe(),
        config.granularity,
        tuple(
            _spec(n, t_meta)
            for n, t_meta in zip(
                setup.part.input_names, map(TensorMeta.of, setup.inputs), strict=True
            )
        ),
        tuple(records),
        {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "tolerance": TOLERANCE,
            "seconds": round(time.perf_counter() - started, 1),
            "weights_bytes": exporter.weights.size,
        },
    )
    manifest.write(config.out)
    return manifest


def _halves(
    exporter: _Exporter,
    config: ExportConfig,
    part: Partitioning,
    k: int,
    asked: bool,
    inputs: Sequence[torch.Tensor],
    prefix: str,
    input_names: Sequence[str],
) -> tuple[PartRecord, PartRecord]:
    """A cut's front and back, exported and checked. Every path's front takes the inputs by
    the model's own names (an exit's path is traced through a wrapper with names of its own),
    so a device feeds any front the same way."""
    cut = part.cut(k)
    empty = PartRecord("empty")
    front_rec = empty if k == 0 else _skipped(asked, "fronts")
    back_rec = empty if k == part.last else _skipped(asked, "backs")
    if not asked:
        return front_rec, back_rec
    front, back = part.split(k)
    flat = _Flat(back).eval()
    with torch.no_grad():
        boundary = list(front.eval()(*inputs))
        outputs = list(flat(*boundary)) if k < part.last and config.backs else []
    ins, sent = [INPUT + n for n in input_names], [BOUNDARY + n for n in cut.boundary]
    if k > 0 and config.fronts:
        front_rec = exporter.part(front, inputs, boundary, (ins, sent), f"{prefix}front_{k}.onnx")
    if k < part.last and config.backs:
        outs = [OUTPUT + n for n in part.output_names]
        back_rec = exporter.part(flat, boundary, outputs, (sent, outs), f"{prefix}back_{k}.onnx")
    return front_rec, back_rec


def _skipped(asked: bool, side: str) -> PartRecord:
    return PartRecord("skipped", reason="not in --cuts" if not asked else f"--parts without {side}")


def _row(part: Partitioning, k: int, front: PartRecord, back: PartRecord) -> BundleCut:
    cut = part.cut(k)
    return BundleCut(
        cut.index,
        cut.name,
        cut.num_device_ops,
        tuple(_spec(n, m) for n, m in zip(cut.boundary, part.boundary_metas(k), strict=True)),
        cut.boundary_bytes,
        cut.device_macs,
        cut.edge_macs,
        cut.device_param_bytes,
        cut.edge_param_bytes,
        {k: float(v) for k, v in cut.features.items()},
        front,
        back,
    )


def _path(
    part: Partitioning, exit: int | None, accuracy: float | None, rows: list[BundleCut]
) -> BundlePath:
    names = part.output_names
    last = list(part.cuts[-1].boundary)
    values = part.structure.values if part.structure else last
    return BundlePath(
        exit,
        part.fingerprint.hex(),
        accuracy,
        tuple(_spec(n, m) for n, m in zip(names, part.outputs, strict=True)),
        tuple(last.index(v) for v in values),
        tuple(rows),
        tuple(_op_record(op) for op in part.ops),
    )
