"""``coinfer.partition``: every place a model can be cut, and the two halves of any cut."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch.fx as fx
from torch import Tensor, nn

from coinfer.graph.cuts import ValueSpan, enumerate_cuts, layer_key
from coinfer.graph.errors import CutIndexError, PartitionError
from coinfer.graph.fingerprint import fingerprint
from coinfer.graph.outputs import OutputStructure
from coinfer.graph.propagate import NodeRecord, attribute_bytes, propagate
from coinfer.graph.split import segment_graph, split_graph
from coinfer.graph.trace import LeafSpec, trace
from coinfer.graph.types import Cut, Op, TensorMeta

GRANULARITIES: tuple[str, ...] = ("layer", "node")


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Trace and measure as inference runs, then give the model back as it was."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


class Partitioning:
    """The cuts of one model for one input signature.

    ``cuts[0]`` runs everything on the edge (the raw inputs are sent); ``cuts[-1]`` runs
    everything on the device (only the outputs would be sent). ``ops`` lists the compute nodes
    n_1..n_N in execution order; cut k runs ``ops[:cuts[k].num_device_ops]`` on the device.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        ops: Sequence[Op],
        cuts: Sequence[Cut],
        granularity: str,
        input_names: Sequence[str],
        values: Mapping[str, TensorMeta] | None = None,
        outputs: Sequence[TensorMeta] = (),
        structure: OutputStructure | None = None,
    ) -> None:
        self.graph_module = graph_module
        self.ops: tuple[Op, ...] = tuple(ops)
        self.cuts: list[Cut] = list(cuts)
        self.granularity = granularity
        self.input_names: tuple[str, ...] = tuple(input_names)
        # every tensor value's shape and dtype on the example inputs, by graph name, and the
        # model's outputs flattened in the order they travel: what each side checks a peer's
        # tensors against before decoding them
        self.values: dict[str, TensorMeta] = dict(values or {})
        self.outputs: tuple[TensorMeta, ...] = tuple(outputs)
        # how the flat outputs nest into what the model returns (a dict, tuples, ...)
        self.structure = structure
        self._compute_nodes = [n for n in graph_module.graph.nodes if n.op.startswith("call_")]

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """The digest of the graph, the cuts and the weights (``graph.fingerprint``): what the
        edge compares with a device's before it answers."""
        return fingerprint(self)

    @property
    def num_cuts(self) -> int:
        return len(self.cuts)

    @property
    def output_names(self) -> list[str]:
        """``logits``, ``aux.0``: each output's place in what the model returns."""
        if self.structure is None:
            return [f"output_{i}" for i in range(len(self.outputs))]
        return list(self.structure.names)

    @property
    def last(self) -> int:
        """P, the index of the everything-on-the-device cut."""
        return len(self.cuts) - 1

    def cut(self, k: int) -> Cut:
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= self.last:
            raise CutIndexError(
                f"cut index {k!r} is out of range: this partitioning has cuts 0..{self.last} "
                f"(0 = everything on the edge, {self.last} = everything on the device)"
            )
        return self.cuts[k]

    def boundary_metas(self, k: int) -> tuple[TensorMeta, ...]:
        """Shape and dtype of each tensor cut ``k`` sends, in the order the front returns them."""
        return tuple(self.values[name] for name in self.cut(k).boundary)

    def split(self, k: int) -> tuple[fx.GraphModule, fx.GraphModule]:
        """``front(*inputs)`` returns the boundary tensors as a tuple; ``back(*boundary)``
        returns the model's output, bit-exact with the whole model."""
        cut = self.cut(k)
        label = f"{type(self.graph_module).__name__}Cut{k}"
        return split_graph(
            self.graph_module, self._compute_nodes, cut.num_device_ops, cut.boundary, label
        )

    def outputs_at_last_cut(self, boundary: Sequence[Tensor]) -> list[Tensor]:
        """The model's outputs, in the order they travel, from what the last cut's front
        returns (its boundary, in production order: another order once a model returns
        values in an order other than it made them)."""
        names = self.cuts[-1].boundary
        if self.structure is None or list(self.structure.values) == list(names):
            return list(boundary)
        where = {name: i for i, name in enumerate(names)}
        return [boundary[where[name]] for name in self.structure.values]

    def segment(self, a: int, b: int) -> fx.GraphModule:
        """The ops from cut ``a`` to cut ``b`` (a < b): ``segment(*boundary(a))`` returns
        cut ``b``'s boundary as a tuple; chained, the segments compute the front of any cut."""
        start, end = self.cut(a), self.cut(b)
        if not a < b:
            raise ValueError(f"a segment runs from one cut to a later one, got {a} -> {b}")
        label = f"{type(self.graph_module).__name__}Seg{a}to{b}"
        return segment_graph(
            self.graph_module,
            self._compute_nodes,
            start.num_device_ops,
            end.num_device_ops,
            start.boundary,
            end.boundary,
            label,
        )

    def __repr__(self) -> str:
        return (
            f"Partitioning({self.graph_module.__class__.__name__}, {len(self.ops)} ops, "
            f"{len(self.cuts)} cuts, granularity={self.granularity!r})"
        )


def _check_inputs(example_inputs: Any) -> tuple[Tensor, ...]:
    inputs = (example_inputs,) if isinstance(example_inputs, Tensor) else example_inputs
    if not isinstance(inputs, (tuple, list)) or not all(isinstance(t, Tensor) for t in inputs):
        raise PartitionError(
            "example_inputs must be a tensor or a tuple of tensors (one per forward argument), "
            f"got {type(example_inputs).__name__}"
        )
    return tuple(inputs)


def _check_outputs(gm: fx.GraphModule, records: dict[fx.Node, NodeRecord]) -> fx.Node:
    output = next(n for n in gm.graph.nodes if n.op == "output")
    for node in output.all_input_nodes:
        if node.op != "get_attr" and not isinstance(records[node].value, TensorMeta):
            raise PartitionError(
                f"the model returns a {records[node].value} ({node.name}); outputs must be "
                f"tensors, or tuples, lists or dicts of tensors, so that they can be sent"
            )
    return output


def partition(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    granularity: str = "layer",
    leaf_modules: Iterable[LeafSpec] = (),
) -> Partitioning:
    """Trace ``model`` with torch.fx and list every place it can be cut.

    ``granularity="layer"`` keeps the cuts between top-level layers (children of the model,
    nn.Sequential containers flattened); ``"node"`` keeps a cut after every traced op. The model
    is traced and measured in eval mode; its mode is restored afterwards.
    """
    if granularity not in GRANULARITIES:
        raise PartitionError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    inputs = _check_inputs(example_inputs)
    with _eval_mode(model):
        gm = trace(model, leaf_modules)
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(inputs):
            raise PartitionError(
                f"{type(model).__name__}.forward takes {len(placeholders)} input(s) "
                f"({', '.join(p.name for p in placeholders)}) but {len(inputs)} example "
                f"input(s) were given"
            )
        records = propagate(gm, inputs)
    output = _check_outputs(gm, records)

    compute = [n for n in gm.graph.nodes if n.op.startswith("call_")]
    position = {n: i + 1 for i, n in enumerate(compute)}
    ops = []
    for i, node in enumerate(compute, start=1):
        rec = records[node]
        assert rec.cost is not None
        ops.append(
            Op(
                index=i,
                name=node.name,
                layer=layer_key(node),
                kind=rec.cost.kind,
                target=rec.target,
                input_shapes=rec.input_shapes,
                output=rec.value if isinstance(rec.value, TensorMeta) else None,
                macs=int(rec.cost.macs),
                params=rec.params,
                attrs=dict(rec.cost.attrs),
            )
        )
    end = len(compute) + 1
    spans = [
        ValueSpan(
            name=node.name,
            produced=position.get(node, 0),
            last_use=max(
                (end if user is output else position[user] for user in node.users), default=0
            ),
            meta=records[node].value,
        )
        for node in [*placeholders, *compute]
    ]
    param_bytes = attribute_bytes(gm, sorted({p for op in ops for p in op.params}))
    cuts = enumerate_cuts(ops, spans, param_bytes, granularity)
    values = {span.name: span.meta for span in spans if isinstance(span.meta, TensorMeta)}
    outputs: list[TensorMeta | str] = []
    fx.node.map_aggregate(
        output.args[0], lambda n: outputs.append(records[n].value) if isinstance(n, fx.Node) else n
    )
    return Partitioning(
        gm,
        ops,
        cuts,
        granularity,
        [p.name for p in placeholders],
        values,
        [m for m in outputs if isinstance(m, TensorMeta)],
        OutputStructure(output.args[0]),
    )
