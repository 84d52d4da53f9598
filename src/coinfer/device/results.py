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
from typing import IO, Any

import torch

from coinfer.assembly import DeviceSetup
from coinfer.device.client import FrameRecord
from coinfer.graph.partitioning import Partitioning
from coinfer.output import strict

TOP_K = 5
ALL_VALUES_UP_TO = 256  # outputs this small are written whole (a 1,000-class row is not)


def is_scores(t: torch.Tensor) -> bool:
    """A classifier's output: floating, one row (or a vector) of at least two scores."""
    return (
        t.is_floating_point()
        and t.numel() >= 2
        and (t.dim() == 1 or (t.dim() == 2 and t.shape[0] == 1))
    )


def describe_output(name: str, t: torch.Tensor, top_k: int = TOP_K) -> dict[str, Any]:
    t = t.detach()
    row: dict[str, Any] = {
        "name": name,
        "shape": list(t.shape),
        "dtype": str(t.dtype).removeprefix("torch."),
    }
    flat = t.reshape(-1)
    if is_scores(t):
        values, indices = torch.topk(flat.float(), min(top_k, flat.numel()))
        row["top_k"] = [[int(i), float(v)] for i, v in zip(indices, values, strict=True)]
    if flat.numel() <= ALL_VALUES_UP_TO:
        row["values"] = flat.tolist()
    elif flat.numel():
        as_float = flat.double()
        row |= {
            "mean": float(as_float.mean()),
            "min": float(as_float.min()),
            "max": float(as_float.max()),
            "l2": float(as_float.norm()),
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

        def names(part: Partitioning) -> list[str]:
            return list(part.structure.names) if part.structure is not None else []

        by_exit: dict[int | None, list[str]] = {None: names(setup.model.part)}
        by_exit |= {p.exit: names(p.part) for p in setup.model.exits}
        return cls(path, by_exit, sources)

    def __enter__(self) -> ResultWriter:
        return self  # the file is made with the first frame: a run that fails first leaves none

    def write(self, record: FrameRecord, outputs: Sequence[torch.Tensor]) -> None:
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
