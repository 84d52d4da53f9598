"""A stopping rule as a Policy of the one loop, in a stage-wise world (``Context.stage`` and
``gain``): what the registry builds ``stopping``, ``osla``, ``myopic`` and ``fixed-split`` from."""

from __future__ import annotations

import math
from dataclasses import dataclass

from coinfer.errors import BadValueError
from coinfer.policies.stopping.costs import Fading, StoppingCosts
from coinfer.policies.stopping.rules import ThresholdRule, fixed_rule
from coinfer.policies.types import Action, Context, Feedback


@dataclass(frozen=True)
class StageProblem:
    """What a stage-wise policy is built from: the stage costs and the channel's law."""

    costs: StoppingCosts
    fading: Fading


class ThresholdPolicy:
    """A threshold rule as a Policy in a stage-wise world: at stage l it stops (``Action(l)``)
    iff the gain it sees is at least γ_l, else it goes on (``Action(l + 1)``); at L̄ it stops."""

    def __init__(self, rule: ThresholdRule) -> None:
        self.rule = rule

    def select(self, ctx: Context) -> Action:
        if ctx.stage is None or ctx.gain is None:
            raise BadValueError(
                f"the {self.rule.name} rule decides stage by stage: it needs a "
                "stage-wise world (a channel, --channel rayleigh)"
            )
        stage = ctx.stage
        if stage >= self.rule.last or ctx.gain >= self.rule.thresholds[stage]:
            return Action(stage)
        return Action(stage + 1)

    def update(self, action: Action, fb: Feedback) -> None:
        """The rule is computed offline from the stage costs; nothing to learn online."""


def rule_of(policy: object, costs: StoppingCosts, fading: Fading, name: str) -> ThresholdRule:
    """The threshold rule a stage-wise policy follows, for its analytic cost: a rule's own, or
    — for a fixed cut in a stage-wise world (edge-only, device-only, fixed-K) — the fixed split
    at that cut."""
    if isinstance(policy, ThresholdPolicy):
        return policy.rule
    cut = policy.select(Context(stage=0, gain=math.inf)).cut  # type: ignore[attr-defined]
    return fixed_rule(costs, fading, min(cut, costs.layers), name)
