"""A model's outputs as they travel (a flat list of tensors) and as the model returns them (a
tensor, or tuples, lists and dicts of them, nested): one order on every side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
from torch.fx.immutable_collections import immutable_dict, immutable_list
from torch.utils import _pytree as pytree

from coinfer.errors import BadModelError


def output_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor of a model's output, in the order they travel (dict values in insertion
    order, the order torch.fx records them)."""
    leaves = pytree.tree_leaves(value)
    tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
    if not tensors and leaves:
        raise BadModelError(f"a model output must hold tensors, got {type(value).__name__}")
    return tensors


def _plain(value: Any) -> Any:
    """fx's immutable containers as the dicts and lists the model returned."""
    if isinstance(value, immutable_dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, immutable_list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class OutputStructure:
    """The shape of a model's output tree, read from its traced graph's output node."""

    def __init__(self, output_arg: Any) -> None:
        leaves, self._spec = pytree.tree_flatten(output_arg)
        self._slots = [isinstance(leaf, fx.Node) for leaf in leaves]
        self._constants = [
            None if slot else leaf for slot, leaf in zip(self._slots, leaves, strict=True)
        ]
        paths, _ = pytree.tree_flatten_with_path(output_arg)
        self.names: list[str] = [_name(path) for (path, leaf) in paths if isinstance(leaf, fx.Node)]
        # the graph value behind each output tensor, in the order the outputs travel
        self.values: list[str] = [leaf.name for leaf in leaves if isinstance(leaf, fx.Node)]

    @property
    def num_tensors(self) -> int:
        return sum(self._slots)

    def rebuild(self, tensors: Sequence[torch.Tensor]) -> Any:
        """The model's output from the flat tensors that travelled."""
        if len(tensors) != self.num_tensors:
            raise BadModelError(f"the output holds {self.num_tensors} tensors, got {len(tensors)}")
        it = iter(tensors)
        leaves = [
            next(it) if slot else const
            for slot, const in zip(self._slots, self._constants, strict=True)
        ]
        return _plain(pytree.tree_unflatten(leaves, self._spec))


def _name(path: tuple[Any, ...]) -> str:
    """``logits``, ``aux.0``: a leaf's place in the output, for people (``output`` for a
    bare tensor)."""
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return ".".join(parts) or "output"
