"""Models by name: the zoo's own, ``torchvision:NAME`` and a user's ``module:factory``.

Every model is created with a seeded initialisation, so a device and an edge server that create
the same name with the same seed hold the same weights without sending them.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coinfer.errors import BadModelError, register_user_source
from coinfer.zoo.weights import load_weights

Shapes = tuple[tuple[int, ...], ...]
DEFAULT_IMAGE_SHAPES: Shapes = ((1, 3, 224, 224),)


class ModelNotFoundError(BadModelError, KeyError):
    """An unknown model name; the message lists what is available."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    input_shapes: Callable[..., Shapes]
    summary: str
    source: str


_REGISTRY: dict[str, ModelEntry] = {}


def register(
    name: str,
    *,
    summary: str,
    source: str,
    inputs: Shapes | Callable[..., Shapes] = DEFAULT_IMAGE_SHAPES,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory; ``inputs`` gives its example input shapes (or computes them
    from the factory's keyword arguments)."""

    def shapes_fn(**kw: Any) -> Shapes:
        return inputs(**kw) if callable(inputs) else inputs

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, shapes_fn, summary, source)
        return factory

    return decorate


def names() -> list[str]:
    """The zoo's model names (``torchvision:NAME`` and ``module:factory`` also work in create)."""
    return sorted(_REGISTRY)


def entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ModelNotFoundError(
            f"unknown model {name!r}. Zoo models: {', '.join(names())}; also "
            f"'torchvision:NAME' (with the 'vision' extra) or your own 'package.module:factory'"
        )
    return _REGISTRY[name]


def _torchvision_factory(model_name: str) -> Callable[..., nn.Module]:
    try:
        import torchvision
    except Exception as exc:
        raise ModelNotFoundError(
            f"'torchvision:{model_name}' needs torchvision, which does not import here ({exc}). "
            f"Install a torchvision that matches your torch (pip install 'coinfer[vision]'), "
            f"or use a zoo model: {', '.join(names())}"
        ) from exc

    def factory(**kw: Any) -> nn.Module:
        kw.setdefault("weights", None)  # never download weights
        return torchvision.models.get_model(model_name, **kw)

    return factory


def _import_module(module_name: str, spec: str) -> Any:
    """``package.module`` (the current directory on the path, as ``python -m`` has it) or
    ``path/to/file.py``."""
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        if not path.is_file():
            raise ModelNotFoundError(f"no file {module_name!r} for model {spec!r}")
        loaded = importlib.util.spec_from_file_location(f"coinfer_user_{path.stem}", path)
        if loaded is None or loaded.loader is None:
            raise ModelNotFoundError(f"cannot load {module_name!r} as Python")
        module = importlib.util.module_from_spec(loaded)
        sys.modules[loaded.name] = module
        register_user_source(path)  # what it raises is the user's, not a bug of coinfer's
        loaded.loader.exec_module(module)
        return module
    here = str(Path.cwd())
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
    found = importlib.util.find_spec(module_name)
    if found is not None and found.origin:
        register_user_source(found.origin)  # before it runs: what it raises is the user's
    return importlib.import_module(module_name)


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.rpartition(":")
    try:
        module = _import_module(module_name, spec)
    except ModelNotFoundError:
        raise
    except ImportError as exc:
        raise ModelNotFoundError(
            f"cannot import module {module_name!r} for model {spec!r}: {exc}. Run from the "
            f"directory that holds it, or put it on PYTHONPATH"
        ) from exc
    except Exception as exc:  # the user's module raised while importing
        raise ModelNotFoundError(
            f"importing {module_name!r} for model {spec!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelNotFoundError(
            f"{module_name!r} has no callable {attr!r}; a user model is given as "
            f"'package.module:factory' (or 'file.py:factory'), where factory() returns an "
            f"nn.Module"
        )
    return factory


def resolve(name: str) -> tuple[Callable[..., nn.Module], Callable[..., Shapes] | None]:
    """The factory for a model spec, and its input shapes when the zoo knows them."""
    if name.startswith("torchvision:"):
        return _torchvision_factory(name.split(":", 1)[1]), lambda **_: DEFAULT_IMAGE_SHAPES
    if ":" in name:
        return _import_factory(name), None
    e = entry(name)
    return e.factory, e.input_shapes


def create(
    name: str, *, seed: int = 0, weights: str | Path | None = None, **kwargs: Any
) -> nn.Module:
    """Build a model by name with a seeded random initialisation (or the ``weights`` file's
    ``state_dict``, loaded strictly), in eval mode."""
    factory, _ = resolve(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise BadModelError(
            f"factory for {name!r} returned {type(model).__name__}, not an nn.Module"
        )
    if weights is not None:
        load_weights(model, Path(weights))
    return model.eval()


def ships_weights(name: str) -> bool:
    """Whether the zoo ships trained weights for ``name`` (its factory takes ``pretrained``)."""
    if ":" in name:
        return False
    return "pretrained" in inspect.signature(entry(name).factory).parameters


def shipped_exit_accuracy(name: str) -> list[float] | None:
    """The held-out accuracy of each exit of the trained multi-exit weights the zoo ships for
    ``name`` (what its factory's ``exit_accuracy`` reads), None for any other model."""
    if not ships_weights(name):
        return None
    reader = getattr(entry(name).factory, "exit_accuracy", None)
    return list(reader()) if callable(reader) else None


def create_deployed(
    name: str, *, seed: int = 0, weights: str | Path | None = None, **kwargs: Any
) -> nn.Module:
    """The model as a device and an edge both run it: the ``weights`` file's where given, else
    the zoo's shipped trained weights where it ships them (branchy_alexnet, trained on
    scikit-learn's digits), else the seeded initialisation — so both sides hold the same
    weights without sending them (and the edge checks the fingerprint of what it holds)."""
    if weights is None and not kwargs and ships_weights(name):
        return create(name, seed=seed, pretrained=True)
    return create(name, seed=seed, weights=weights, **kwargs)


def first_layer_hint(factory: Any, kwargs: dict[str, Any]) -> str:
    """A shape to suggest, read off the model's first layer (its channels or features; the
    image size it cannot know)."""
    try:
        net = factory(**kwargs)
        first = next(m for m in net.modules() if not list(m.children()))
    except Exception:  # the factory's own failure is reported where it is built
        return "1,C,H,W (say 1,3,32,32 for 32x32 RGB images)"
    if isinstance(first, nn.Conv2d):
        return f"1,{first.in_channels},H,W (its first layer takes {first.in_channels} channels)"
    if isinstance(first, nn.Conv1d):
        return f"1,{first.in_channels},L (its first layer takes {first.in_channels} channels)"
    if isinstance(first, nn.Linear):
        return f"1,{first.in_features} (its first layer takes {first.in_features} features)"
    if isinstance(first, nn.Embedding):
        return "1,N:int64 (its first layer embeds N token indices)"
    return "1,C,H,W (say 1,3,32,32 for 32x32 RGB images)"


def example_inputs(
    name: str, *, seed: int = 0, shapes: Shapes | None = None, **kwargs: Any
) -> tuple[torch.Tensor, ...]:
    """Seeded inputs the model takes: float inputs of ``shapes`` where given, else what the
    factory declares (its ``example_inputs``: shapes, or a callable of the factory's keyword
    arguments returning the tensors), else the zoo's shapes."""
    gen = torch.Generator().manual_seed(seed)
    if shapes is None:
        factory, shapes_fn = resolve(name)
        declared = getattr(factory, "example_inputs", None)
        if callable(declared):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                value = declared(**kwargs)
            tensors = (value,) if isinstance(value, torch.Tensor) else tuple(value)
            if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
                raise BadModelError(
                    f"{name}: its example_inputs() must return a tensor or a tuple of tensors"
                )
            return tensors
        if declared is not None:
            shapes = tuple(tuple(s) for s in declared)
        elif shapes_fn is None:
            raise BadModelError(
                f"the input shape of {name!r} is unknown: give --input-shape "
                f"{first_layer_hint(factory, kwargs)} (once per forward argument), or declare "
                f"it on the factory: factory.example_inputs = [(1, C, H, W)]"
            )
        else:
            shapes = shapes_fn(**kwargs)
    return tuple(torch.randn(shape, generator=gen) for shape in shapes)
