"""The models an edge server runs, and an LRU of their back halves.

What each (model, cut) expects — the boundary's shapes and dtypes — and what its reply takes
are known from the partitioning alone (shape propagation ran the model once on its example
inputs), so the event loop can check a request without running or splitting anything; back
halves are split and run on the edge's worker thread only, which is the one user of the LRU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from coinfer.errors import BadValueError
from coinfer.graph.partitioning import Partitioning, partition
from coinfer.graph.types import TensorMeta
from coinfer.policies.edgent import exit_partitions
from coinfer.wire.protocol import ErrorCode, ProtocolError
from coinfer.zoo.spec import ModelSpec

REPLY_HEADER_BYTES = 512  # a RESULT's prefix and header, beyond its tensor entries
REPLY_ENTRY_BYTES = 160  # one tensor entry in a RESULT header


class ModelStore:
    """The models a server runs (zoo names, ``module:factory`` or full ``ModelSpec``s: factory
    arguments, input shapes, a weights file) and an LRU of back halves per (model, cut, exit).
    Weights are the spec's file's, else the zoo's shipped trained ones where it ships them
    (``zoo.create_deployed``), else its seeded initialisation — the same as on the device, which
    the fingerprint of every request proves. A multi-exit model is served whole (exit nil) and
    along each exit's path (exit 1..M)."""

    def __init__(self, specs: Sequence[str | ModelSpec], cache_size: int = 32) -> None:
        if not specs:
            raise BadValueError("serve at least one model: --model vgg16 (repeatable)")
        models = {}
        exits = {}
        for given in specs:
            spec = ModelSpec.of(given)
            if spec.name in models:
                raise BadValueError(f"model {spec.name!r} is given twice: serve each model once")
            inputs = spec.example_inputs()
            net = spec.build()
            models[spec.name] = partition(net, inputs, leaf_modules=spec.leaf)
            exits[spec.name] = exit_partitions(net, inputs)
        self._init(models, cache_size, exits)

    @classmethod
    def of(cls, models: dict[str, tuple[Partitioning, tuple[torch.Tensor, ...]]]) -> ModelStore:
        """A store of models already partitioned (a user's own, or benchmarks')."""
        store = cls.__new__(cls)
        store._init({name: part for name, (part, _) in models.items()}, 32)
        return store

    def _init(
        self,
        parts: dict[str, Partitioning],
        cache_size: int,
        exits: dict[str, dict[int, Partitioning]] | None = None,
    ) -> None:
        self.parts = parts
        self.exits = {name: (exits or {}).get(name, {}) for name in parts}
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int, int | None], torch.nn.Module] = OrderedDict()
        self._boundaries: dict[tuple[str, int, int | None], tuple[TensorMeta, ...]] = {}
        self._reply_bytes: dict[tuple[str, int | None], int] = {}
        self._fingerprints: dict[tuple[str, int | None], bytes] = {}
        for name, part in parts.items():
            paths: dict[int | None, Partitioning] = {None: part}
            for number, p in self.exits[name].items():
                paths[number] = p
            for e, path in paths.items():
                self._reply_bytes[(name, e)] = REPLY_HEADER_BYTES + sum(
                    REPLY_ENTRY_BYTES + m.nbytes for m in path.outputs
                )
                self._fingerprints[(name, e)] = path.fingerprint  # hashed once, at start

    def check_fingerprint(self, model: object, exit: object, given: object) -> None:
        """A request's ``fp`` must be the fingerprint of what the edge holds for (model,
        exit): otherwise the device's model differs (weights, factory arguments, granularity)
        and an answer would be wrong (WRONG_MODEL)."""
        self.path(model, exit)  # type: ignore[arg-type]  # UNKNOWN_MODEL, BAD_CUT (exit)
        ours = self._fingerprints[(model, exit)]  # type: ignore[index]
        if not isinstance(given, bytes) or len(given) != len(ours):
            raise ProtocolError(
                ErrorCode.BAD_HEADER,
                f"INFER needs 'fp': the {len(ours)}-byte fingerprint of the device's model",
            )
        if given != ours:
            raise ProtocolError(
                ErrorCode.WRONG_MODEL,
                f"the device's {model!r} is not the edge's (the device's fingerprint "
                f"{given.hex()[:12]}, the edge's {ours.hex()[:12]}): other weights, factory "
                f"arguments, input shapes or leaf modules. Give both sides the same --weights, "
                f"--model-arg, --input-shape and --leaf",
            )

    def fingerprint(self, model: str, exit: int | None = None) -> bytes:
        """The fingerprint of (``model``, ``exit``)'s path, as requests must carry it."""
        return self._fingerprints[(model, exit)]

    def describe(self) -> dict[str, dict[str, object]]:
        """What is served, for a device's preflight (STATS): each model's exits and the
        fingerprint of each path."""
        return {
            name: {
                "exits": sorted(self.exits[name]),
                "fingerprint": self._fingerprints[(name, None)].hex(),
                "exit_fingerprints": {
                    str(e): self._fingerprints[(name, e)].hex() for e in sorted(self.exits[name])
                },
            }
            for name in self.parts
        }

    def path(self, model: str, exit: object = None) -> Partitioning:
        """The partitioning a request for (``model``, ``exit``) runs on: the whole model for
        exit nil, one exit's path for 1..M (BAD_CUT for an exit the model does not have)."""
        part = self.part(model)
        if exit is None:
            return part
        exits = self.exits[model]
        if not exits:
            text = f"exit {exit!r}: {model!r} has one exit here (send exit nil)"
            raise ProtocolError(ErrorCode.BAD_CUT, text)
        if not isinstance(exit, int) or isinstance(exit, bool) or exit not in exits:
            raise ProtocolError(
                ErrorCode.BAD_CUT, f"exit {exit!r} of {model!r} must be nil or in 1..{len(exits)}"
            )
        return exits[exit]

    def part(self, model: object) -> Partitioning:
        if not isinstance(model, str):
            raise ProtocolError(ErrorCode.BAD_HEADER, "INFER needs 'model' (a string)")
        if model not in self.parts:
            shown = model if len(model) <= 80 else model[:80] + "..."
            raise ProtocolError(
                ErrorCode.UNKNOWN_MODEL,
                f"model {shown!r} is not served here (serving: {', '.join(self.parts)})",
            )
        return self.parts[model]

    def boundary(self, model: str, cut: object, exit: object = None) -> tuple[TensorMeta, ...]:
        """What cut ``cut`` of ``model`` sends (BAD_CUT for a cut or exit it does not have)."""
        part = self.path(model, exit)
        if not isinstance(cut, int) or isinstance(cut, bool) or not 0 <= cut < part.last:
            where = f"{model!r}" if exit is None else f"exit {exit} of {model!r}"
            raise ProtocolError(
                ErrorCode.BAD_CUT,
                f"cut {cut!r} of {where} must be in 0..{part.last - 1} "
                f"(cut {part.last} runs everything on the device)",
            )
        key = (model, cut, exit if isinstance(exit, int) else None)
        if key not in self._boundaries:
            self._boundaries[key] = part.boundary_metas(cut)
        return self._boundaries[key]

    def reply_bytes(self, model: str, exit: int | None = None) -> int:
        """The most a RESULT for (``model``, ``exit``) takes: its outputs and their header."""
        return self._reply_bytes[(model, exit)]

    def back(self, model: str, cut: int, exit: int | None = None) -> torch.nn.Module:
        """The back half of (model, cut, exit), split on first use (on the edge's worker
        thread)."""
        key = (model, cut, exit)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        _, back = self.path(model, exit).split(cut)
        self._cache[key] = back.eval()
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return self._cache[key]
