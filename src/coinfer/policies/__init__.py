"""Where to cut now? Every policy speaks the same Policy protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coinfer.lazy import lazy_names
from coinfer.policies.types import Action, Context, Environment, Feedback, Policy

if TYPE_CHECKING:
    from coinfer.policies.neurosurgeon import Neurosurgeon, Plan

__all__ = ["Action", "Context", "Environment", "Feedback", "Neurosurgeon", "Plan", "Policy"]
__getattr__ = lazy_names(
    "coinfer.policies", dict.fromkeys(("Neurosurgeon", "Plan"), "coinfer.policies.neurosurgeon")
)
