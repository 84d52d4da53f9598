"""A demo's claims as measured: a margin inside the noise is "not distinguishable", never a
win; a clear margin holds or misses by its direction; a closeness claim reads its interval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coinfer.output import dumps
from coinfer.systems.verdicts import Verdict, compare

RNG = np.random.default_rng(1)
FAST = list(RNG.normal(1.0, 0.1, 200))
SLOW = list(RNG.normal(2.0, 0.2, 200))
ALMOST = list(np.asarray(FAST) * 1.02)  # 2% apart: inside the 5% noise


def test_a_clear_margin_holds_or_misses_by_its_direction() -> None:
    won = compare("A", FAST, "below", "B", SLOW)
    assert won.outcome == "held" and won.margin == pytest.approx(-0.5, abs=0.05)
    low, margin, high = won.low, won.margin, won.high
    assert low is not None and margin is not None and high is not None
    assert low < margin < high < 0
    assert compare("A", SLOW, "below", "B", FAST).outcome == "missed"
    assert compare("A", SLOW, "above", "B", FAST).outcome == "held"


def test_a_margin_inside_the_noise_is_not_distinguishable() -> None:
    tie = compare("A", FAST, "below", "B", ALMOST)
    assert tie.outcome == "not distinguishable" and abs(tie.margin or 0) < 0.05
    verdict = Verdict("A below B", [compare("A", FAST, "below", "B", SLOW), tie], "why")
    assert verdict.outcome == "not distinguishable" and not verdict.held
    lines = verdict.lines()
    assert lines[0] == "expected: A below B" and len(lines) == 4
    assert lines[-1].startswith("verdict: not distinguishable") and lines[-1].endswith(": why")
    assert "noise ±5%" in lines[2] and "not distinguishable" in lines[2]


def test_a_few_noisy_frames_are_not_a_win() -> None:
    """3 frames against 3: a 20% lower mean whose interval reaches past zero."""
    claim = compare("A", [0.5, 1.5, 0.4], "below", "B", [1.0, 0.6, 1.4])
    assert claim.margin is not None and claim.margin < -0.05
    assert claim.outcome == "not distinguishable"


def test_at_most_and_within() -> None:
    assert compare("A", ALMOST, "at most", "B", FAST).outcome == "held"  # a tie holds
    assert compare("A", SLOW, "at most", "B", FAST).outcome == "missed"
    assert compare("A", FAST, "within", "its analytic cost", 1.01).outcome == "held"
    assert compare("A", FAST, "within", "its analytic cost", 1.5).outcome == "missed"
    few = compare("A", [0.8, 1.3, 0.9], "within", "its analytic cost", 1.1)  # 6% off, 3 draws
    assert few.outcome == "not distinguishable"
    assert compare("A", FAST, "within", "x", float("nan")).outcome == "not measured"


def test_rates_in_points_and_groups_as_the_mean_of_their_means() -> None:
    mine, other = np.ones(100), np.ones(100)
    mine[::10], other[::5], other[1::5] = 0.0, 0.0, 0.0  # 90% against 60%, spread over the run
    hits = compare("A", list(mine), "above", "B", list(other), relative=False)
    assert hits.outcome == "held" and hits.margin == pytest.approx(0.3)
    assert "+30.0 points" in hits.line()
    pair = compare("pair", [[1.0] * 100, [3.0] * 2], "below", "other", [[2.5] * 50, [2.5] * 50])
    assert pair.mine == pytest.approx(2.0)  # a device with 2 frames weighs as much as one with 100
    empty = compare("A", [], "below", "B", FAST)
    assert empty.outcome == "not measured"
    assert Verdict("x", [empty]).outcome == "not measured"
    doc = json.loads(dumps(Verdict("x", [hits, empty]).as_json()))
    assert doc["claims"][0]["outcome"] == "held" and doc["claims"][1]["margin"] is None


def test_paired_draws_cancel_what_both_sides_met() -> None:
    """Costs that swing 10x with the channel, one side 10% cheaper on every draw: paired, the
    margin is clear; unpaired, the swing hides it."""
    channel = np.exp(np.random.default_rng(3).normal(0, 1.2, 200))
    dear, cheap = list(channel), list(channel * 0.9)
    assert compare("A", cheap, "below", "B", dear, paired=True).outcome == "held"
    assert compare("A", cheap, "below", "B", dear).outcome == "not distinguishable"
    with pytest.raises(ValueError, match="one length"):
        compare("A", cheap[:10], "below", "B", dear, paired=True)
