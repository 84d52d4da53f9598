"""Run the traced graph once on example inputs and record what every node produced and cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn

from coinfer.graph.errors import PartitionError
from coinfer.graph.ops import OpCost, function_cost, function_name, module_cost
from coinfer.graph.trace import fetch_attr
from coinfer.graph.types import TensorMeta


@dataclass(frozen=True)
class NodeRecord:
    """What one node produced (tensor metadata, or the Python type name of anything else)."""

    value: TensorMeta | str
    cost: OpCost | None
    target: str
    input_shapes: tuple[tuple[int, ...], ...]
    params: tuple[str, ...]


def _shapes(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
    values = list(args) + list(kwargs.values())
    flat: list[Any] = []
    for v in values:
        flat.extend(v if isinstance(v, (list, tuple)) else [v])
    return tuple(tuple(v.shape) for v in flat if isinstance(v, Tensor))


def _summed_inner_cost(m: nn.Module, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """Run an opaque leaf module, costing it as the sum of the known layers inside it."""
    total = 0
    handles = []

    def hook(sub: nn.Module, sub_args: tuple[Any, ...], sub_out: Any) -> None:
        nonlocal total
        cost = module_cost(sub, sub_args, sub_out)
        if cost is not None:
            total += cost.macs

    for _, sub in m.named_modules():
        if sub is not m:
            handles.append(sub.register_forward_hook(hook))
    try:
        out = m(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return out, OpCost("other", total)


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.records: dict[fx.Node, NodeRecord] = {}
        self.current: fx.Node | None = None

    def run_node(self, n: fx.Node) -> Any:
        self.current = n
        with self._set_current_node(n):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            cost: OpCost | None = None
            params: tuple[str, ...] = ()
            target = str(n.target)
            if n.op == "call_module":
                assert isinstance(n.target, str)
                m = self.fetch_attr(n.target)
                target = type(m).__name__
                result = m(*args, **kwargs)
                cost = module_cost(m, args, result)
                if cost is None:
                    result, cost = _summed_inner_cost(m, args, kwargs)
                params = tuple(
                    f"{n.target}.{name}" for name, _ in (*m.named_parameters(), *m.named_buffers())
                )
            else:
                result = getattr(self, n.op)(n.target, args, kwargs)
                if n.op == "call_function":
                    target = function_name(n.target)
                    cost = function_cost(target, args, kwargs, result)
                elif n.op == "call_method":
                    cost = function_cost(target, args, kwargs, result)
            if n.op.startswith("call_"):
                params += tuple(str(a.target) for a in n.all_input_nodes if a.op == "get_attr")
        value = TensorMeta.of(result) if isinstance(result, Tensor) else type(result).__name__
        self.records[n] = NodeRecord(value, cost, target, _shapes(args, kwargs), params)
        return result


def propagate(gm: fx.GraphModule, example_inputs: Sequence[Tensor]) -> dict[fx.Node, NodeRecord]:
    """What every node of ``gm`` produced and cost on ``example_inputs``."""
    recorder = _Recorder(gm)
    try:
        with torch.no_grad():
            recorder.run(*example_inputs)
    except Exception as exc:
        where = recorder.current
        op = f"op '{where.name}' ({where.op} {where.target})" if where is not None else "the model"
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        declared = ", ".join(
            f"{','.join(map(str, t.shape))}:{str(t.dtype).removeprefix('torch.')}"
            for t in example_inputs
        )
        wants_indices = "indices" in first_line and "scalar type" in first_line
        fix = (
            "an embedding takes int64 (or int32) indices: declare --input-shape ...:int64"
            if wants_indices
            else "check that --input-shape gives the shapes and dtypes the model expects"
        )
        raise PartitionError(
            f"running the model on example inputs {declared} failed at {op}: {first_line}. "
            f"{fix[0].upper()}{fix[1:]}."
        ) from exc
    return recorder.records


def attribute_bytes(gm: fx.GraphModule, names: Sequence[str]) -> dict[str, int]:
    """Bytes of each named parameter, buffer or tensor constant of ``gm``."""
    sizes: dict[str, int] = {}
    for name in names:
        value = fetch_attr(gm, name)
        sizes[name] = value.numel() * value.element_size() if isinstance(value, Tensor) else 0
    return sizes
