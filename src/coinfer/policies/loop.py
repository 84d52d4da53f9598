"""The one loop every world runs: observe → select → step → update (DESIGN §1).

``play`` is the loop itself, written once as a generator: it observes, asks the policy, yields
the action for the world to carry out, receives that frame's Feedback and lets the policy learn
from it — only from a plausible one (``types.plausible``). Who carries the action out is the
world's business, so the same loop serves every world:

- ``run_loop``: a world whose ``step`` returns when the frame is done (the simulator, the live
  runtime on its own event loop);
- ``run_loop_async``: a world whose ``astep`` is awaited (several live devices on one loop);
- the fleet simulator holds one ``play`` per device and sends each its Feedback from its
  discrete-event clock, so many devices' loops interleave in simulated time.

A stage-wise world (online splitting) answers ``None`` while the frame goes on; the loop then
observes the next stage and asks again, so a frame is one or more decisions and one Feedback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Protocol

from coinfer.policies.types import Action, Context, Environment, Feedback, Policy, plausible


@dataclass(frozen=True)
class Step:
    """One frame as the loop saw it: the first decision's context, the final action, what was
    measured, whether the policy learned from it, and how many decisions the frame took."""

    frame: int
    context: Context
    action: Action
    feedback: Feedback
    learned: bool
    decisions: int = 1


class Observer(Protocol):
    def observe(self) -> Context: ...


class AsyncEnvironment(Protocol):
    def observe(self) -> Context: ...

    def astep(self, action: Action) -> Awaitable[Feedback | None]: ...


Game = Generator[Action, Feedback | None, list[Step]]


def play(
    env: Observer,
    policy: Policy,
    frames: int,
    *,
    until: Callable[[], bool] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Game:
    """The loop for ``frames`` frames (fewer once ``until()`` is true before a frame after the
    first: a run of a set duration runs at least one frame, however slow the host): yields
    each action, is sent each step's Feedback (None: a stage-wise frame goes on), returns the
    steps."""
    steps: list[Step] = []
    for frame in range(frames):
        if frame and until is not None and until():
            break
        first = ctx = env.observe()
        decisions = 0
        while True:
            action = policy.select(ctx)
            decisions += 1
            feedback = yield action
            if feedback is not None:
                break
            ctx = env.observe()
        learned = plausible(feedback)
        if learned:  # never learn from an impossible measurement
            policy.update(action, feedback)
        step = Step(frame, first, action, feedback, learned, decisions)
        steps.append(step)
        if on_step is not None:
            on_step(step)
    return steps


def run_loop(
    env: Environment,
    policy: Policy,
    frames: int,
    *,
    until: Callable[[], bool] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """``play`` in a world whose ``step`` finishes the frame (or the stage) before returning."""
    game = play(env, policy, frames, until=until, on_step=on_step)
    try:
        action = next(game)
        while True:
            action = game.send(env.step(action))
    except StopIteration as done:
        return list(done.value)


async def run_loop_async(
    env: AsyncEnvironment,
    policy: Policy,
    frames: int,
    *,
    until: Callable[[], bool] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """``play`` in a world stepped by awaiting ``astep`` (devices sharing one event loop)."""
    game = play(env, policy, frames, until=until, on_step=on_step)
    try:
        action = next(game)
        while True:
            action = game.send(await env.astep(action))
    except StopIteration as done:
        return list(done.value)
