"""The models an edge server runs, and an LRU of their back halves.

What each (model, cut) expects — the boundary's shapes and dtypes — and what its reply takes
are known from the partitioning alone (shape propagation ran the model once on its example
inputs), so the event loop can check a request without running or splitting anything; back
halves are split and run on the edge's worker thread only, which is the one user of the LRU.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

import torch

from coinfer import zoo
from coinfer.graph.partition import Partitioning, partition
from coinfer.graph.types import TensorMeta
from coinfer.runtime.protocol import ErrorCode, ProtocolError
from coinfer.runtime.tensors import tensors_of

REPLY_HEADER_BYTES = 512  # a RESULT's prefix and header, beyond its tensor entries
REPLY_ENTRY_BYTES = 160  # one tensor entry in a RESULT header


class ModelStore:
    """The models a server runs (by zoo name or ``module:factory``) and an LRU of back halves
    per (model, cut). Weights come from the seeded zoo initialisation, as on the device."""

    def __init__(
        self,
        specs: Sequence[str],
        input_shapes: Sequence[tuple[int, ...]] | None = None,
        cache_size: int = 32,
    ) -> None:
        if not specs:
            raise ValueError("serve at least one model: --model vgg16 (repeatable)")
        models = {}
        for spec in specs:
            shapes = tuple(input_shapes) if input_shapes and ":" in spec else None
            inputs = zoo.example_inputs(spec, shapes=shapes)
            models[spec] = partition(zoo.create(spec), inputs)
        self._init(models, cache_size)

    @classmethod
    def of(cls, models: dict[str, tuple[Partitioning, tuple[torch.Tensor, ...]]]) -> ModelStore:
        """A store of models already partitioned (a user's own, or benchmarks')."""
        store = cls.__new__(cls)
        store._init({name: part for name, (part, _) in models.items()}, 32)
        return store

    def _init(self, parts: dict[str, Partitioning], cache_size: int) -> None:
        self.parts = parts
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], torch.nn.Module] = OrderedDict()
        self._boundaries: dict[tuple[str, int], tuple[TensorMeta, ...]] = {}
        self._reply_bytes = {
            name: REPLY_HEADER_BYTES + sum(REPLY_ENTRY_BYTES + m.nbytes for m in part.outputs)
            for name, part in parts.items()
        }

    def part(self, model: object) -> Partitioning:
        if not isinstance(model, str):
            raise ProtocolError(ErrorCode.BAD_HEADER, "INFER needs 'model' (a string)")
        if model not in self.parts:
            shown = model if len(model) <= 80 else model[:80] + "..."
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL,
                                f"model {shown!r} is not served here (serving: "
                                f"{', '.join(self.parts)})")  # fmt: skip
        return self.parts[model]

    def boundary(self, model: str, cut: object, exit: object = None) -> tuple[TensorMeta, ...]:
        """What cut ``cut`` of ``model`` sends (BAD_CUT for a cut or exit it does not have)."""
        part = self.part(model)
        if not isinstance(cut, int) or isinstance(cut, bool) or not 0 <= cut < part.last:
            raise ProtocolError(ErrorCode.BAD_CUT,
                                f"cut {cut!r} of {model!r} must be in 0..{part.last - 1} "
                                f"(cut {part.last} runs everything on the device)")  # fmt: skip
        if exit is not None:
            text = f"exit {exit!r}: {model!r} is served whole here (exit nil)"
            raise ProtocolError(ErrorCode.BAD_CUT, text)
        key = (model, cut)
        if key not in self._boundaries:
            self._boundaries[key] = part.boundary_metas(cut)
        return self._boundaries[key]

    def reply_bytes(self, model: str) -> int:
        """The most a RESULT for ``model`` takes: its outputs and their header."""
        return self._reply_bytes[model]

    def back(self, model: str, cut: int) -> torch.nn.Module:
        """The back half of (model, cut), split on first use (on the edge's worker thread)."""
        key = (model, cut)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        _, back = self.parts[model].split(cut)
        self._cache[key] = back.eval()
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return self._cache[key]


def forward(
    store: ModelStore, model: str, cut: int, tensors: list[torch.Tensor]
) -> tuple[list[torch.Tensor], float]:
    """Run one request's back half; its outputs and compute time."""
    module = store.back(model, cut)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            out = tensors_of(module(*tensors))
    except Exception as exc:  # the back half raised, or returned something not tensors
        raise ProtocolError(ErrorCode.INTERNAL, f"the back half raised: {exc}") from None
    return out, time.perf_counter() - start


def forward_batch(
    store: ModelStore, model: str, cut: int, requests: list[list[torch.Tensor]]
) -> list[tuple[list[torch.Tensor], float]]:
    """One forward for several requests (stacked on the batch dimension), each getting its
    slice of the outputs and the whole batch's time: what it waited on the edge."""
    if len(requests) == 1:
        return [forward(store, model, cut, requests[0])]
    module = store.back(model, cut)
    start = time.perf_counter()
    stacked = [torch.cat(parts, dim=0) for parts in zip(*requests, strict=True)]
    try:
        with torch.no_grad():
            outputs = tensors_of(module(*stacked))
    except Exception as exc:
        raise ProtocolError(ErrorCode.INTERNAL, f"the back half raised: {exc}") from None
    elapsed = time.perf_counter() - start
    sizes = [r[0].shape[0] for r in requests]
    split = [torch.split(o, sizes, dim=0) for o in outputs]
    return [([s[i] for s in split], elapsed) for i in range(len(requests))]
