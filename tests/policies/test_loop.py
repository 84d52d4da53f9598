"""The one loop: it learns only from plausible measurements, lets a stage-wise world take
several decisions per frame, stops when told, and drives a generator-stepped world the same."""

from __future__ import annotations

import asyncio
import math

from coinfer.policies.loop import play, run_loop, run_loop_async
from coinfer.policies.types import Action, Context, Feedback


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[Context] = []
        self.learned: list[Feedback] = []

    def select(self, ctx: Context) -> Action:
        self.seen.append(ctx)
        return Action((ctx.stage or 0) + 1)  # in a stage-wise world: always "go on"

    def update(self, action: Action, fb: Feedback) -> None:
        self.learned.append(fb)


class _Frames:
    """A frame world whose third frame measures a NaN."""

    def __init__(self) -> None:
        self.frame = 0

    cuts = ()

    def observe(self) -> Context:
        return Context(frame=self.frame)

    def step(self, action: Action) -> Feedback:
        self.frame += 1
        return Feedback(math.nan if self.frame == 3 else 0.1, 0.0, 0.0, 0.0, 0)

    async def astep(self, action: Action) -> Feedback:
        await asyncio.sleep(0)
        return self.step(action)


class _Stages:
    """A stage-wise world: a frame ends when the policy has gone on past stage 2."""

    def __init__(self) -> None:
        self.frame = self.stage = 0

    cuts = ()

    def observe(self) -> Context:
        return Context(frame=self.frame, stage=self.stage, gain=1.0)

    def step(self, action: Action) -> Feedback | None:
        if action.cut <= self.stage or self.stage == 2:
            self.frame, self.stage = self.frame + 1, 0
            return Feedback(0.1, 0.0, 0.0, 0.0, 0)
        self.stage += 1
        return None


def test_the_loop_never_learns_from_an_impossible_measurement() -> None:
    policy = _Recorder()
    steps = run_loop(_Frames(), policy, 5)
    assert [s.learned for s in steps] == [True, True, False, True, True]
    assert len(policy.learned) == 4 and all(math.isfinite(fb.device_s) for fb in policy.learned)


def test_a_stage_wise_frame_takes_several_decisions_and_one_feedback() -> None:
    policy = _Recorder()
    steps = run_loop(_Stages(), policy, 4)
    assert [s.decisions for s in steps] == [3, 3, 3, 3]
    assert [c.stage for c in policy.seen[:3]] == [0, 1, 2]
    assert len(policy.learned) == 4


def test_until_stops_before_a_frame_and_every_driver_is_the_same_loop() -> None:
    env = _Frames()
    assert len(run_loop(env, _Recorder(), 10, until=lambda: env.frame >= 2)) == 2
    # a run of a set duration runs its first frame however slow the host
    assert len(run_loop(_Frames(), _Recorder(), 10, until=lambda: True)) == 1
    steps = asyncio.run(run_loop_async(_Frames(), _Recorder(), 5))
    assert [s.learned for s in steps] == [True, True, False, True, True]
    game = play(_Frames(), _Recorder(), 1)  # stepped by hand, as the fleet does
    assert next(game) == Action(1)
    try:
        game.send(Feedback(0.1, 0.0, 0.0, 0.0, 0))
    except StopIteration as done:
        assert len(done.value) == 1
    else:
        raise AssertionError("the loop should have ended after its one frame")
