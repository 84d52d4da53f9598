"""The systems, by name: each paper's bundle (``systems.base.System``), imported on first use."""

from __future__ import annotations

from importlib import import_module

from coinfer.errors import BadValueError
from coinfer.systems.base import LiveRecipe, System, no_recipe

NAMES = ("neurosurgeon", "edgent", "ans", "cans", "stopping")  # in the papers' order


def get(name: str) -> System:
    """The system ``name`` (BadValueError naming the ones there are)."""
    if name not in NAMES:
        raise BadValueError(f"unknown system {name!r}: choose from {', '.join(NAMES)}")
    system: System = import_module(f"coinfer.systems.{name}").SYSTEM
    return system


def with_demo() -> list[str]:
    """The systems that have a live demo."""
    return [name for name in NAMES if get(name).demo is not None]


def owner(policy: str) -> System | None:
    """The system that brings ``policy`` (None for the baselines every system shares)."""
    return next((get(n) for n in NAMES if policy in get(n).policies), None)


def live_recipe(policy: str) -> LiveRecipe:
    """What a device of ``policy`` must do before its first frame (its system's recipe)."""
    found = owner(policy)
    return found.live if found is not None else no_recipe
