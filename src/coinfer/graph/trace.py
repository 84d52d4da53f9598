"""Symbolic tracing with torch.fx, with errors that name the module and the remedy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch.fx as fx
from torch import nn

from coinfer.graph.errors import PartitionError

LeafSpec = type[nn.Module] | str


class _ModuleTraceError(Exception):
    """Carries the innermost module whose forward could not be traced."""

    def __init__(self, qualname: str, module: nn.Module, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.qualname = qualname
        self.module = module
        self.cause = cause


class _Tracer(fx.Tracer):
    def __init__(self, leaf_types: tuple[type, ...], leaf_names: frozenset[str]) -> None:
        super().__init__()
        self._leaf_types = leaf_types
        self._leaf_names = leaf_names

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self._leaf_names:
            return True
        if self._leaf_types and isinstance(m, self._leaf_types):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(
        self,
        m: nn.Module,
        forward: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except _ModuleTraceError:
            raise
        except Exception as exc:
            raise _ModuleTraceError(self.path_of_module(m), m, exc) from exc


def fetch_attr(root: nn.Module, qualname: str) -> Any:
    """The module, parameter, buffer or constant at a dotted path such as ``layer1.0.conv1``."""
    obj: Any = root
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _split_leaf_specs(leaf_modules: Iterable[LeafSpec]) -> tuple[tuple[type, ...], frozenset[str]]:
    types: list[type] = []
    names: set[str] = set()
    for spec in leaf_modules:
        if isinstance(spec, str):
            names.add(spec)
        elif isinstance(spec, type) and issubclass(spec, nn.Module):
            types.append(spec)
        else:
            raise PartitionError(
                f"leaf_modules entries must be nn.Module subclasses or qualified module names "
                f"(like 'layer1.0'), got {spec!r}"
            )
    return tuple(types), frozenset(names)


def trace(model: nn.Module, leaf_modules: Iterable[LeafSpec] = ()) -> fx.GraphModule:
    """Trace ``model`` into a GraphModule whose nodes run in the model's execution order.

    ``leaf_modules`` (types or qualified names) are kept as single opaque calls: use them for
    code torch.fx cannot follow (data-dependent control flow, untraceable Python).
    """
    if not isinstance(model, nn.Module):
        raise PartitionError(f"partition() needs an nn.Module, got {type(model).__name__}")
    leaf_types, leaf_names = _split_leaf_specs(leaf_modules)
    unknown = leaf_names - {name for name, _ in model.named_modules()}
    if unknown:
        raise PartitionError(
            f"leaf_modules names {sorted(unknown)} are not submodules of "
            f"{type(model).__name__}; use qualified names from model.named_modules()"
        )
    tracer = _Tracer(leaf_types, leaf_names)
    try:
        graph = tracer.trace(model)
    except _ModuleTraceError as failure:
        cls = type(failure.module).__name__
        raise PartitionError(
            f"torch.fx cannot trace module '{failure.qualname}' ({cls}): {failure.cause}. "
            f"Keep it whole with partition(..., leaf_modules=[{cls}]) or "
            f"leaf_modules=['{failure.qualname}']: it then runs as one layer that no cut "
            f"falls inside."
        ) from failure.cause
    except Exception as exc:
        cls = type(model).__name__
        raise PartitionError(
            f"torch.fx cannot trace {cls}.forward itself: {exc}. Move the untraceable code "
            f"into a submodule and pass it in leaf_modules=[...], or make the control flow "
            f"independent of tensor values."
        ) from exc
    return fx.GraphModule(tracer.root, graph, type(model).__name__)
