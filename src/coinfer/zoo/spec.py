"""A model as a user names it — ``name``, factory keyword arguments, input shapes and dtypes, a
weights file — built the same way on a device and on an edge.

A factory of one's own (``package.module:factory`` or ``path/to/file.py:factory``) may declare
its example inputs (``factory.example_inputs``, see ``registry.example_inputs``);
``--input-shape`` overrides them.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coinfer.dtypes import DTYPES
from coinfer.errors import BadModelError
from coinfer.zoo.registry import create_deployed, example_inputs

INPUT_DTYPES = DTYPES  # an input may be declared as any dtype that can travel
_SHAPE = re.compile(r"\d+(?:[x,]\d+)*,?")
MAX_INPUT_ELEMENTS = 1 << 28  # 1 GiB of float32: an input shape beyond it is a typo
INTEGER_INPUT_HIGH = 2  # integer example inputs are drawn from 0..1 (valid for any embedding)


class ModelSpecError(BadModelError):
    """A model cannot be built as named: a bad shape, argument or weights file."""


@dataclass(frozen=True)
class InputSpec:
    """One forward argument: its shape and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        """``1,3,224,224``, ``1x3x224x224`` or ``1,16:int64``."""
        dims, _, dtype_name = text.strip().partition(":")
        compact = re.sub(r"\s+", "", dims)
        ok = _SHAPE.fullmatch(compact)
        shape = tuple(int(p) for p in re.split("[x,]", compact) if p) if ok else ()
        if not shape or any(s <= 0 for s in shape):
            raise ModelSpecError(
                f"--input-shape {text!r} is not a shape: write it like 1,3,224,224 (or "
                f"1,16:int64 for an integer input), one --input-shape per forward argument"
            )
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise ModelSpecError(
                f"--input-shape {text!r} has {math.prod(shape):,} elements: "
                f"more than {MAX_INPUT_ELEMENTS:,} is surely a typo"
            )
        name = dtype_name.strip() or "float32"
        if name not in INPUT_DTYPES:
            raise ModelSpecError(
                f"--input-shape {text!r}: dtype {name!r} is not one of {', '.join(INPUT_DTYPES)}"
            )
        return cls(shape, INPUT_DTYPES[name])

    def example(self, generator: torch.Generator) -> torch.Tensor:
        """A seeded example: normal floats, integers in 0..1, random booleans."""
        if self.dtype.is_floating_point:
            return torch.randn(self.shape, generator=generator).to(self.dtype)
        high = 2 if self.dtype == torch.bool else INTEGER_INPUT_HIGH
        return torch.randint(0, high, self.shape, generator=generator).to(self.dtype)

    def text(self) -> str:
        dims = ",".join(map(str, self.shape))
        return dims if self.dtype == torch.float32 else f"{dims}:{_dtype_name(self.dtype)}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_model_arg(text: str) -> tuple[str, Any]:
    """``key=value``: the value read as a Python literal (``32``, ``0.5``, ``True``,
    ``(3, 5)``), else kept as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ModelSpecError(
            f"--model-arg {text!r} must be KEY=VALUE (e.g. width=32), with KEY "
            f"a keyword argument of the factory"
        )
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return key, value


@dataclass(frozen=True)
class ModelSpec:
    """Everything that makes a model what both sides run: the same spec gives the same
    weights (seeded initialisation, or the file's) and the same partition."""

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    inputs: tuple[InputSpec, ...] | None = None
    weights: Path | None = None
    seed: int = 0
    leaf: tuple[str, ...] = ()  # submodules kept whole (qualified or class names): both sides

    @classmethod
    def of(cls, model: str | ModelSpec) -> ModelSpec:
        return model if isinstance(model, ModelSpec) else cls(model)

    @property
    def arguments(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def build(self) -> nn.Module:
        """The model in eval mode: the weights file's where one is given, else the zoo's
        shipped trained weights where it ships them, else the seeded initialisation."""
        try:
            return create_deployed(
                self.name, seed=self.seed, weights=self.weights, **self.arguments
            )
        except TypeError as exc:
            if self.kwargs:
                raise ModelSpecError(
                    f"{self.name}: the factory does not take these arguments "
                    f"({exc}); check --model-arg"
                ) from None
            raise

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Seeded example inputs: of ``inputs`` where given, else what the factory declares
        (or the zoo knows)."""
        if self.inputs is not None:
            gen = torch.Generator().manual_seed(seed)
            return tuple(spec.example(gen) for spec in self.inputs)
        return example_inputs(self.name, seed=seed, **self.arguments)

    def describe(self) -> dict[str, Any]:
        """The spec as JSON: what a run's configuration records."""
        return {
            "name": self.name,
            "args": {
                k: v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)
                for k, v in self.kwargs
            },
            "input_shapes": [s.text() for s in self.inputs] if self.inputs else None,
            "weights": str(self.weights) if self.weights else None,
            "leaf": list(self.leaf) or None,
        }


def model_spec(
    name: str,
    input_shapes: Sequence[str] = (),
    model_args: Sequence[str] = (),
    weights: str | Path | None = None,
    leaf: Sequence[str] = (),
) -> ModelSpec:
    """A spec from command-line text (ModelSpecError naming what is wrong)."""
    inputs = tuple(InputSpec.parse(s) for s in input_shapes) or None
    kwargs = tuple(parse_model_arg(a) for a in model_args)
    path = Path(weights) if weights is not None else None
    if path is not None and not path.is_file():
        raise ModelSpecError(
            f"--weights {str(path)!r}: no such file (give a state_dict saved "
            f"with torch.save(model.state_dict(), FILE))"
        )
    return ModelSpec(name, kwargs, inputs, path, leaf=tuple(leaf))
