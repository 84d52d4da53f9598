"""Turn one cut of a traced graph into two runnable halves that share the model's weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.fx as fx


class _GraphCopier:
    """Copies nodes into a new graph, creating get_attr nodes on first use so each half
    references exactly the parameters, buffers and constants it needs."""

    def __init__(self) -> None:
        self.graph = fx.Graph()
        self.env: dict[fx.Node, fx.Node] = {}

    def lookup(self, node: fx.Node) -> fx.Node:
        if node not in self.env and node.op == "get_attr":
            self.env[node] = self.graph.get_attr(str(node.target))
        return self.env[node]

    def copy(self, node: fx.Node) -> None:
        self.env[node] = self.graph.node_copy(node, self.lookup)

    def map(self, value: Any) -> Any:
        return fx.map_arg(value, self.lookup)


def split_graph(
    gm: fx.GraphModule,
    compute_nodes: Sequence[fx.Node],
    num_device_ops: int,
    boundary: Sequence[str],
    label: str,
) -> tuple[fx.GraphModule, fx.GraphModule]:
    """front(*inputs) -> tuple of boundary tensors; back(*boundary) -> the model's output."""
    nodes = {n.name: n for n in gm.graph.nodes}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    output = next(n for n in gm.graph.nodes if n.op == "output")

    front = _GraphCopier()
    for ph in placeholders:
        front.copy(ph)
    for node in compute_nodes[:num_device_ops]:
        front.copy(node)
    front.graph.output(tuple(front.env[nodes[name]] for name in boundary))

    back = _GraphCopier()
    for name in boundary:
        back.env[nodes[name]] = back.graph.placeholder(name)
    for node in compute_nodes[num_device_ops:]:
        back.copy(node)
    back.graph.output(back.map(output.args[0]))

    return (
        fx.GraphModule(gm, front.graph, f"{label}Front"),
        fx.GraphModule(gm, back.graph, f"{label}Back"),
    )
