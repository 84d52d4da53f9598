"""Where to cut now? Every policy speaks the same Policy protocol."""

from coinfer.policies.neurosurgeon import Neurosurgeon, Plan
from coinfer.policies.types import Action, Context, Environment, Feedback, Policy

__all__ = ["Action", "Context", "Environment", "Feedback", "Neurosurgeon", "Plan", "Policy"]
