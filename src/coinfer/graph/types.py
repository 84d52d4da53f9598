"""The records a partitioning is made of — tensors on the boundary, ops, and cuts — and what
reads a path of them (``CutTable``) and runs it (``Runner``) without knowing torch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

# The ANS context vector (Zhang, Chen, Xu, WWW 2021): edge-side work plus the data sent.
ANS_FEATURES: tuple[str, ...] = (
    "edge_conv_macs",
    "edge_conv_layers",
    "edge_fc_macs",
    "edge_fc_layers",
    "edge_act_elements",
    "edge_act_layers",
    "boundary_bytes",
)


# a path's tensors named outside coinfer by their role (ONNX parts, the Open Inference
# Protocol's inputs and outputs): input:x, boundary:relu_4, output:logits
INPUT, BOUNDARY, OUTPUT = "input:", "boundary:", "output:"


@dataclass(frozen=True)
class TensorMeta:
    """Shape, dtype and size of one value seen during shape propagation (or read from a
    bundle's manifest, whose dtypes are numpy's: both print the wire's names and know their
    item size)."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @property
    def dtype_name(self) -> str:
        """The wire's name of the dtype (``float32``): torch's and numpy's dtypes print it."""
        return str(self.dtype).removeprefix("torch.")

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorMeta:
        return cls(tuple(t.shape), t.dtype)


@dataclass(frozen=True)
class Op:
    """One compute node n_i of the traced graph, in execution order.

    ``kind`` is the family latency models and learners group by (conv, fc, matmul, pool, norm,
    lrn, act, dropout, elementwise, reduce, reshape, other); ``target`` the exact module type or
    function; ``attrs`` the layer hyper-parameters regressions need (kernel, stride, channels).
    """

    index: int
    name: str
    layer: str
    kind: str
    target: str
    input_shapes: tuple[tuple[int, ...], ...]
    output: TensorMeta | None
    macs: int
    params: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def output_elements(self) -> int:
        return self.output.numel if self.output is not None else 0


@dataclass(frozen=True)
class Cut:
    """A place to cut: ops 1..``num_device_ops`` on the device, the rest on the edge.

    ``boundary`` names the tensors the device sends (graph value names, in production order);
    cut 0 sends the raw inputs, the last cut sends the model outputs.
    """

    index: int
    name: str
    num_device_ops: int
    boundary: tuple[str, ...]
    boundary_shapes: tuple[tuple[int, ...], ...]
    boundary_bytes: int
    device_macs: int
    edge_macs: int
    device_param_bytes: int
    edge_param_bytes: int
    features: Mapping[str, float]

    def feature_vector(self, names: tuple[str, ...] = ANS_FEATURES) -> list[float]:
        """The features in a fixed order (the ANS 7-vector by default), unscaled."""
        return [float(self.features[n]) for n in names]


class CutTable(Protocol):
    """What a path's readers (latency models, policies, the device client) use of a
    partitioning: a torch ``Partitioning``, or a bundle's path read without torch."""

    @property
    def cuts(self) -> list[Cut]: ...

    @property
    def ops(self) -> tuple[Op, ...]: ...

    @property
    def outputs(self) -> tuple[TensorMeta, ...]: ...

    @property
    def fingerprint(self) -> bytes: ...

    @property
    def last(self) -> int: ...

    @property
    def num_cuts(self) -> int: ...

    @property
    def input_names(self) -> tuple[str, ...]: ...

    @property
    def output_names(self) -> list[str]:
        """The model's outputs by their place (``logits``, ``aux.0``; ``output_0``... where
        they have no names), in the order they travel."""
        ...


class Runner(Protocol):
    """One path's compute on a device, on whatever arrays its runtime holds: torch's halves
    of a partition, or a bundle's parts in ONNX Runtime (``device.runners``)."""

    def front(self, cut: int, inputs: Sequence[Any]) -> list[Any]:
        """What cut ``cut`` sends: its boundary tensors."""
        ...

    def finish(self, cut: int, inputs: Sequence[Any], boundary: Sequence[Any]) -> list[Any]:
        """The outputs, computed here when the edge did not answer for ``cut``."""
        ...

    def at_last_cut(self, boundary: Sequence[Any]) -> list[Any]:
        """The outputs in the order they travel, from the last cut's boundary."""
        ...

    def to_wire(self, tensors: Sequence[Any]) -> list[np.ndarray]: ...

    def from_wire(self, arrays: list[np.ndarray]) -> list[Any]: ...
