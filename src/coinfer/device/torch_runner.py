"""A partition's halves in torch, as the device client runs them (``runners.Runner``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from coinfer.dtypes import from_numpy, to_arrays
from coinfer.graph.outputs import output_tensors
from coinfer.graph.partitioning import Partitioning


class TorchRunner:
    """A partition's halves in torch (split on first use, kept)."""

    def __init__(self, part: Partitioning) -> None:
        self.part = part
        self._halves: dict[int, tuple[fx.GraphModule, fx.GraphModule]] = {}

    def halves(self, cut: int) -> tuple[fx.GraphModule, fx.GraphModule]:
        if cut not in self._halves:
            self._halves[cut] = self.part.split(cut)
        return self._halves[cut]

    def front(self, cut: int, inputs: Sequence[Any]) -> list[Any]:
        front, _ = self.halves(cut)
        with torch.no_grad():
            return list(front(*inputs))

    def finish(self, cut: int, inputs: Sequence[Any], boundary: Sequence[Any]) -> list[Any]:
        _, back = self.halves(cut)
        with torch.no_grad():
            return output_tensors(back(*boundary))

    def at_last_cut(self, boundary: Sequence[Any]) -> list[Any]:
        return self.part.outputs_at_last_cut(boundary)

    def to_wire(self, tensors: Sequence[Any]) -> list[np.ndarray]:
        return to_arrays(tensors)

    def from_wire(self, arrays: list[np.ndarray]) -> list[Any]:
        return [from_numpy(a) for a in arrays]
