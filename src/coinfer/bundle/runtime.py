"""Run a bundle's parts in ONNX Runtime, from its manifest, without PyTorch: what a device
that has only numpy and onnxruntime computes (each cut's front, a back half or the whole model
when the edge fails a frame), and how long each cut's front takes there.

Sessions open on first use and stay open (a device runs few cuts often); ``prepare`` opens one
ahead of time, so that the first frame at a cut does not count loading it as compute.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coinfer.arrays import seeded_arrays
from coinfer.bundle.manifest import (
    BundleCut,
    BundlePath,
    Manifest,
    TensorSpec,
    read_manifest,
)
from coinfer.errors import BadFileError, BadValueError
from coinfer.graph.types import BOUNDARY, INPUT, OUTPUT


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise BadValueError(
            "a bundle runs in ONNX Runtime, which is not installed: pip install 'coinfer[device]'"
        ) from None
    return onnxruntime


class OnnxBundle:
    """The parts of one bundle, each an ONNX Runtime session opened on first use."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = read_manifest(self.folder)
        self._ort = _onnxruntime()
        self._options = self._ort.SessionOptions()
        if threads is not None:
            self._options.intra_op_num_threads = threads
            self._options.inter_op_num_threads = 1
        self._sessions: dict[str, Any] = {}

    def path(self, exit: int | None = None) -> BundlePath:
        return self.manifest.path(exit)

    def cut(self, cut: int, exit: int | None = None) -> BundleCut:
        path = self.path(exit)
        if not 0 <= cut <= path.last:
            raise BadValueError(
                f"cut {cut} of the {self.manifest.name} bundle: it has cuts 0..{path.last}"
            )
        return path.cuts[cut]

    def runnable(self, cut: int, exit: int | None = None) -> bool:
        """Whether the device can run cut ``cut``'s front (cut 0 runs nothing)."""
        row = self.cut(cut, exit)
        return row.index == 0 or row.front.runnable

    def _session(self, file: str) -> Any:
        if file not in self._sessions:
            where = self.folder / file
            if not where.is_file():
                raise BadFileError(f"{where}: the bundle names this part but it is not there")
            self._sessions[file] = self._ort.InferenceSession(
                str(where), self._options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[file]

    def prepare(self, cut: int, exit: int | None = None, side: str = "front") -> None:
        """Open cut ``cut``'s front (or back) now, not on the first frame that runs it."""
        row = self.cut(cut, exit)
        part = row.front if side == "front" else row.back
        if part.runnable:
            self._session(self._file(row, exit, side))

    def _file(self, row: BundleCut, exit: int | None, side: str = "front") -> str:
        """The ONNX file of cut ``row``'s front or back (BadValueError where there is none)."""
        part = row.front if side == "front" else row.back
        if not part.runnable or part.file is None:
            where = "" if exit is None else f" (exit {exit})"
            remedy = "choose another cut or export it" if side == "front" else "export --parts both"
            raise BadValueError(
                f"cut {row.index}{where} of the {self.manifest.name} bundle has no {side} to run "
                f"({part.state}: {part.reason or 'see coinfer export'}); {remedy}"
            )
        return part.file

    def front(
        self, cut: int, inputs: Sequence[np.ndarray], exit: int | None = None
    ) -> list[np.ndarray]:
        """What cut ``cut`` sends: its boundary tensors, in the manifest's order (cut 0: the
        inputs themselves)."""
        row = self.cut(cut, exit)
        if row.index == 0:
            return [np.ascontiguousarray(x) for x in inputs]
        session = self._session(self._file(row, exit))
        feeds = {INPUT + spec.name: x for spec, x in zip(self.manifest.inputs, inputs, strict=True)}
        return list(session.run([BOUNDARY + b.name for b in row.boundary], feeds))

    def has_back(self, cut: int, exit: int | None = None) -> bool:
        return self.cut(cut, exit).back.runnable

    def back(
        self, cut: int, boundary: Sequence[np.ndarray], exit: int | None = None
    ) -> list[np.ndarray]:
        """The outputs from cut ``cut``'s boundary (the bundle's back half, here)."""
        row = self.cut(cut, exit)
        session = self._session(self._file(row, exit, "back"))
        feeds = {BOUNDARY + b.name: x for b, x in zip(row.boundary, boundary, strict=True)}
        names = [OUTPUT + t.name for t in self.path(exit).outputs]
        return list(session.run(names, feeds))

    def outputs(self, boundary: Sequence[np.ndarray], exit: int | None = None) -> list[np.ndarray]:
        """The model's outputs from the last cut's boundary, in the order they travel."""
        return [boundary[i] for i in self.path(exit).outputs_from_last]

    def whole(self, inputs: Sequence[np.ndarray], exit: int | None = None) -> list[np.ndarray]:
        """The whole model (or exit path) on the device: the fallback when the edge is gone."""
        path = self.path(exit)
        return self.outputs(self.front(path.last, inputs, exit), exit)


def example_inputs(specs: Sequence[TensorSpec], seed: int = 0) -> list[np.ndarray]:
    """Seeded inputs of the bundle's shapes and dtypes (for timing, not for answers)."""
    return seeded_arrays([(s.shape, s.dtype) for s in specs], np.random.default_rng(seed))


def time_fronts(
    fronts: OnnxBundle, exit: int | None = None, repeats: int = 10, warmup: int = 2
) -> list[float | None]:
    """The median seconds of each cut's front in ONNX Runtime here (0 for cut 0; None where the
    bundle has no front for the cut)."""
    inputs = example_inputs(fronts.manifest.inputs)
    times: list[float | None] = []
    for row in fronts.path(exit).cuts:
        if row.index == 0:
            times.append(0.0)
            continue
        if not row.front.runnable:
            times.append(None)
            continue
        for _ in range(warmup):
            fronts.front(row.index, inputs, exit)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fronts.front(row.index, inputs, exit)
            samples.append(time.perf_counter() - start)
        times.append(statistics.median(samples))
    return times


def front_op_seconds(path: BundlePath, times: Sequence[float | None]) -> dict[str, float]:
    """Per-op seconds whose sums up to each cut are the measured front times: ONNX Runtime
    fuses ops, so only whole fronts are measured. Each increment between two measured cuts is
    shared among the ops between them by their MACs (evenly where they have none), so a cut
    with no front of its own falls between its neighbours; fronts are made monotone (a longer
    front does more work; a shorter time is noise)."""
    if times[-1] is None:
        raise BadValueError(
            f"the bundle's whole-model front did not export, so its fronts cannot be timed "
            f"up to cut {path.last}: plan without --bundle"
        )
    names = [str(op.get("name")) for op in path.ops]
    macs = [float(op.get("macs") or 0) for op in path.ops]
    seconds = dict.fromkeys(names, 0.0)
    done_ops, done_s = 0, 0.0
    for row, measured in zip(path.cuts, times, strict=True):
        if measured is None or row.num_device_ops <= done_ops:
            continue
        reached = max(done_s, measured)
        span = range(done_ops, row.num_device_ops)
        total = sum(macs[i] for i in span)
        for i in span:
            share = macs[i] / total if total else 1.0 / len(span)
            seconds[names[i]] = (reached - done_s) * share
        done_ops, done_s = row.num_device_ops, reached
    return seconds


def bundle_profile(fronts: OnnxBundle, repeats: int = 10) -> dict[str, float]:
    """Per-op seconds of every path's fronts in ONNX Runtime here (exits after the whole
    model, as the torch profile merges them): the device class ``host`` of a bundle."""
    seconds: dict[str, float] = {}
    for path in fronts.manifest.paths:
        seconds.update(front_op_seconds(path, time_fronts(fronts, path.exit, repeats)))
    return seconds


def check_same_model(fronts: OnnxBundle, fingerprint: bytes, what: str) -> None:
    """The bundle must hold the model ``what`` names (the same fingerprint), else its times
    and its answers are another model's."""
    ours = fronts.path(None).fingerprint
    if ours != fingerprint.hex():
        raise BadValueError(
            f"the bundle in {fronts.folder} is not {what} (its fingerprint {ours[:12]}, the "
            f"model's {fingerprint.hex()[:12]}): export it again with the same --weights, "
            f"--model-arg, --input-shape and --leaf"
        )
