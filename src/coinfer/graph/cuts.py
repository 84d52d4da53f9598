"""Where a traced model can be cut, what crosses each cut, and the per-cut numbers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch.fx as fx
from torch import nn

from coinfer.graph.types import Cut, Op, TensorMeta

KINDS: tuple[str, ...] = (
    "conv",
    "fc",
    "matmul",
    "pool",
    "norm",
    "lrn",
    "act",
    "dropout",
    "elementwise",
    "reduce",
    "reshape",
    "other",
)


def _is_container(module_type: type) -> bool:
    """nn.Sequential with its stock forward only groups layers; it is not a layer itself."""
    return issubclass(module_type, nn.Sequential) and module_type.forward is nn.Sequential.forward


def layer_key(node: fx.Node) -> str:
    """The top-level layer a node belongs to: the outermost called module that is not a plain
    nn.Sequential (so Sequential containers are flattened), or the node itself when the root's
    forward calls it directly."""
    stack = node.meta.get("nn_module_stack") or {}
    for key, (_, module_type) in stack.items():
        if not _is_container(module_type):
            return str(key)
    return node.name


@dataclass(frozen=True)
class ValueSpan:
    """A value's life on the op axis: produced after op ``produced`` (0 = a model input), last
    needed by op ``last_use`` (N + 1 = a model output)."""

    name: str
    produced: int
    last_use: int
    meta: TensorMeta | str


def candidate_positions(ops: Sequence[Op], granularity: str) -> list[int]:
    n = len(ops)
    if granularity == "node":
        return list(range(n + 1))
    inner = [k for k in range(1, n) if ops[k - 1].layer != ops[k].layer]
    return [0, *inner, n] if n else [0]


def _boundaries(spans: Sequence[ValueSpan], n_ops: int) -> list[list[ValueSpan]]:
    """Boundary of every position 0..N by one sweep: live values produced at or before k and
    still needed after k."""
    by_produced: dict[int, list[ValueSpan]] = {}
    for s in spans:
        if s.last_use > s.produced:
            by_produced.setdefault(s.produced, []).append(s)
    live: dict[str, ValueSpan] = {}
    result: list[list[ValueSpan]] = []
    for k in range(n_ops + 1):
        for s in by_produced.get(k, ()):
            live[s.name] = s
        for name in [name for name, s in live.items() if s.last_use <= k]:
            del live[name]
        result.append(list(live.values()))
    return result


def _features(
    device_ops: Counter[str], edge_ops: Counter[str], boundary_bytes: int, boundary_count: int
) -> dict[str, float]:
    feats: dict[str, float] = {}
    for side, counts in (("device", device_ops), ("edge", edge_ops)):
        for kind in KINDS:
            feats[f"{side}_{kind}_macs"] = float(counts[f"{kind}:macs"])
            feats[f"{side}_{kind}_layers"] = float(counts[f"{kind}:layers"])
        feats[f"{side}_act_elements"] = float(counts["act:elements"])
    feats["boundary_bytes"] = float(boundary_bytes)
    feats["boundary_tensors"] = float(boundary_count)
    return feats


def _op_counter(op: Op) -> Counter[str]:
    c: Counter[str] = Counter({f"{op.kind}:macs": op.macs, f"{op.kind}:layers": 1})
    if op.kind == "act":
        c["act:elements"] = op.output_elements
    return c


def enumerate_cuts(
    ops: Sequence[Op],
    spans: Sequence[ValueSpan],
    param_bytes: Mapping[str, int],
    granularity: str,
) -> list[Cut]:
    """The distinct valid cuts, in order from everything-on-the-edge to everything-on-the-device.

    A position is valid when every value crossing it is a tensor (sizes, shapes and other Python
    values cannot be sent); consecutive positions with the same boundary are merged into the
    first (the later ones only add device work).
    """
    n = len(ops)
    boundaries = _boundaries(spans, n)
    wanted = set(candidate_positions(ops, granularity))

    device: Counter[str] = Counter()
    edge: Counter[str] = Counter()
    for op in ops:
        edge.update(_op_counter(op))
    device_params: set[str] = set()
    edge_param_uses: Counter[str] = Counter(p for op in ops for p in op.params)

    cuts: list[Cut] = []
    previous: tuple[str, ...] | None = None
    for k in range(n + 1):
        if k > 0:
            moved = _op_counter(ops[k - 1])
            device.update(moved)
            edge.subtract(moved)
            for p in ops[k - 1].params:
                device_params.add(p)
                edge_param_uses[p] -= 1
        if k not in wanted:
            continue
        crossing = boundaries[k]
        if not all(isinstance(s.meta, TensorMeta) for s in crossing):
            continue
        names = tuple(s.name for s in crossing)
        if names == previous:
            continue
        previous = names
        metas = [s.meta for s in crossing if isinstance(s.meta, TensorMeta)]
        nbytes = sum(m.nbytes for m in metas)
        edge_params = {p for p, uses in edge_param_uses.items() if uses > 0}
        if k == 0:
            name = "input"
        else:
            last = ops[k - 1]
            name = last.layer if granularity == "layer" else last.name
        cuts.append(
            Cut(
                index=len(cuts),
                name=name,
                num_device_ops=k,
                boundary=names,
                boundary_shapes=tuple(m.shape for m in metas),
                boundary_bytes=nbytes,
                device_macs=int(_total_macs(device)),
                edge_macs=int(_total_macs(edge)),
                device_param_bytes=sum(param_bytes[p] for p in device_params),
                edge_param_bytes=sum(param_bytes[p] for p in edge_params),
                features=_features(device, edge, nbytes, len(names)),
            )
        )
    return cuts


def _total_macs(counts: Counter[str]) -> int:
    """Total MACs in a per-kind counter."""
    return sum(v for key, v in counts.items() if key.endswith(":macs"))
