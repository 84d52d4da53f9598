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


def _split_leaf_specs(
    model: nn.Module, leaf_modules: Iterable[LeafSpec]
) -> tuple[tuple[type, ...], frozenset[str]]:
    """Types, and the qualified names to keep whole. A string is a submodule's qualified name
    (``layer1.0``) or, failing that, a class name (``Gate``: every submodule of that class), so
    that a command line can name either."""
    types: list[type] = []
    names: set[str] = set()
    modules = dict(model.named_modules())
    unknown = []
    for spec in leaf_modules:
        if isinstance(spec, str):
            if spec in modules:
                names.add(spec)
                continue
            of_class = {q for q, m in modules.items() if q and type(m).__name__ == spec}
            if not of_class:
                unknown.append(spec)
            names |= of_class
        elif isinstance(spec, type) and issubclass(spec, nn.Module):
            types.append(spec)
        else:
            raise PartitionError(
                f"leaf_modules entries must be nn.Module subclasses, qualified module names "
                f"(like 'layer1.0') or class names (like 'Gate'), got {spec!r}"
            )
    if unknown:
        raise PartitionError(
            f"leaf {', '.join(map(repr, unknown))}: neither a submodule nor a submodule's class "
            f"in {type(model).__name__}; give a name from model.named_modules() (`coinfer "
            f"inspect` lists the layers) or a class name"
        )
    return tuple(types), frozenset(names)


def trace(model: nn.Module, leaf_modules: Iterable[LeafSpec] = ()) -> fx.GraphModule:
    """Trace ``model`` into a GraphModule whose nodes run in the model's execution order.

    ``leaf_modules`` (types, qualified names or class names) are kept as single opaque calls:
    use them for code torch.fx cannot follow (data-dependent control flow, untraceable Python).
    """
    if not isinstance(model, nn.Module):
        raise PartitionError(f"partition() needs an nn.Module, got {type(model).__name__}")
    leaf_types, leaf_names = _split_leaf_specs(model, leaf_modules)
    tracer = _Tracer(leaf_types, leaf_names)
    try:
        graph = tracer.trace(model)
    except _ModuleTraceError as failure:
        cls = type(failure.module).__name__
        raise PartitionError(
            f"torch.fx cannot trace module '{failure.qualname}' ({cls}): {failure.cause}. "
            f"Keep it whole with --leaf {cls} (or --leaf {failure.qualname}) on the command "
            f"line, leaf_modules=[{cls}] in Python: it then runs as one layer that no cut "
            f"falls inside."
        ) from failure.cause
    except Exception as exc:
        cls = type(model).__name__
        raise PartitionError(
            f"torch.fx cannot trace {cls}.forward itself: {exc}. Move the untraceable code "
            f"into a submodule and keep that whole (--leaf NAME; leaf_modules=[...] in "
            f"Python), or make the control flow "
            f"independent of tensor values."
        ) from exc
    return fx.GraphModule(tracer.root, graph, type(model).__name__)
