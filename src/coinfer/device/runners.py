"""What a device computes with, for one path of its model (a ``graph.types.Runner``): torch's
halves of a partition (``torch_runner``) or a bundle's fronts in ONNX Runtime (here, importing
no torch). The client asks each the same five things — a cut's front, the rest of a frame when
the edge fails it, the outputs at the last cut, and the tensors to and from the wire — so the
offload, its checks and its fallback are written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from coinfer.graph.types import Runner

if TYPE_CHECKING:
    from coinfer.bundle.runtime import OnnxBundle

__all__ = ["OnnxRunner", "Runner"]


class OnnxRunner:
    """A bundle's path in ONNX Runtime, on numpy arrays. When the edge fails a frame, its
    back half runs here if the bundle has it, else the whole model from the frame's input."""

    def __init__(self, fronts: OnnxBundle, exit: int | None = None) -> None:
        self.fronts = fronts
        self.exit = exit

    def front(self, cut: int, inputs: Sequence[Any]) -> list[Any]:
        return self.fronts.front(cut, inputs, self.exit)

    def finish(self, cut: int, inputs: Sequence[Any], boundary: Sequence[Any]) -> list[Any]:
        if self.fronts.has_back(cut, self.exit):
            return self.fronts.back(cut, boundary, self.exit)
        return self.fronts.whole(inputs, self.exit)

    def at_last_cut(self, boundary: Sequence[Any]) -> list[Any]:
        return self.fronts.outputs(boundary, self.exit)

    def to_wire(self, tensors: Sequence[Any]) -> list[np.ndarray]:
        return list(tensors)

    def from_wire(self, arrays: list[np.ndarray]) -> list[Any]:
        return arrays
