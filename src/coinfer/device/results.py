"""A live run's results as a file a script reads: one strict-JSON line per frame with its
timings, where it ran, where its input came from, and each output — its name in the model's
output (``logits``, ``aux.0``), shape, dtype, all its values when it has at most
``ALL_VALUES_UP_TO`` (an embedding, a small classifier's scores, a box), the top k (index, value)
of anything that may be a classifier's scores (one row of floats), and a few statistics of a
larger output (mean, min, max, L2 norm) in place of its values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from coinfer.device.client import FrameRecord
from coinfer.output import strict

if TYPE_CHECKING:
    from coinfer.assembly import DeviceSetup

TOP_K = 5
ALL_VALUES_UP_TO = 256  # outputs this small are written whole (a 1,000-class row is not)


def _array(t: Any) -> np.ndarray:
    """An output as numpy: an ONNX Runtime device's already is; a torch tensor is converted
    (torch is imported only by a device that holds one)."""
    if isinstance(t, np.ndarray):
        return t
    from coinfer.dtypes import to_numpy

    return to_numpy(t.detach())


def is_scores(t: np.ndarray) -> bool:
    """A classifier's output: floating, one row (or a vector) of at least two scores."""
    floating = t.dtype.kind == "f" or t.dtype.name == "bfloat16"
    return floating and t.size >= 2 and (t.ndim == 1 or (t.ndim == 2 and t.shape[0] == 1))


def describe_output(name: str, tensor: Any, top_k: int = TOP_K) -> dict[str, Any]:
    t = _array(tensor)
    row: dict[str, Any] = {"name": name, "shape": list(t.shape), "dtype": t.dtype.name}
    flat = t.reshape(-1)
    if is_scores(t):
        scores = flat.astype(np.float64)
        indices = np.argsort(-scores, kind="stable")[: min(top_k, flat.size)]
        row["top_k"] = [[int(i), float(scores[i])] for i in indices]
    if flat.size <= ALL_VALUES_UP_TO:
        row["values"] = (
            flat.astype(np.float64) if flat.dtype.name == "bfloat16" else flat
        ).tolist()
    elif flat.size:
        as_float = flat.astype(np.float64)
        row |= {
            "mean": float(as_float.mean()),
            "min": float(as_float.min()),
            "max": float(as_float.max()),
            "l2": float(np.linalg.norm(as_float)),
        }
    return row


class ResultWriter:
    """``with ResultWriter(path, names, sources) as w: w.write(record, outputs)``."""

    def __init__(
        self, path: Path, names: Mapping[int | None, Sequence[str]], sources: Sequence[str] = ()
    ) -> None:
        self.path = path
        self.names = {k: list(v) for k, v in names.items()}  # per exit (None: the whole model)
        self.sources = list(sources)
        self._fh: IO[str] | None = None

    @classmethod
    def for_setup(cls, path: Path, setup: DeviceSetup, sources: Sequence[str] = ()) -> ResultWriter:
        """A writer naming the outputs of ``setup``'s model (and of each exit's path)."""

        by_exit: dict[int | None, list[str]] = {None: setup.model.part.output_names}
        by_exit |= {p.exit: p.part.output_names for p in setup.model.exits}
        return cls(path, by_exit, sources)

    def __enter__(self) -> ResultWriter:
        return self  # the file is made with the first frame: a run that fails first leaves none

    def write(self, record: FrameRecord, outputs: Sequence[Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w")
        row: dict[str, Any] = dict(asdict(record))
        if self.sources:
            row["source"] = self.sources[record.frame % len(self.sources)]
        names = self.names.get(record.exit, [])
        if len(names) != len(outputs):
            names = [f"output{i}" for i in range(len(outputs))]
        row["outputs"] = [describe_output(n, t) for n, t in zip(names, outputs, strict=True)]
        self._fh.write(json.dumps(strict(row), allow_nan=False) + "\n")
        self._fh.flush()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
