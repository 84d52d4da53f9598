"""What a demo claims, measured: each claim compares the numbers its table and plot show (the
frames' latencies, the tasks' costs, the deadline hits), with the margin, its 95% bootstrap
interval and whether the margin is beyond what noise moves. A demo whose margin is inside the
noise says "not distinguishable", never "it did".

The noise is run-to-run noise: a demo replays the same trace from the same moment every run,
so what moves between runs is the frames' timing on the host, frame by frame (resampled
independently; paired where both sides met the same draw), plus what moves every frame of a
run at once on a loaded host (the floor: RELATIVE_NOISE, POINTS_NOISE). Whether the outcome
would hold on another stretch of link is another question, which the experiments answer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Two side-by-side devices running the same policy differ by this much in mean latency on this
# 2-core host (the ANS demo before the slowdown, where μLinUCB and edge-only both send the raw
# input: 0.8-0.9% apart in four runs, 2026-12-03): 5% leaves room for a loaded host.
RELATIVE_NOISE = 0.05
POINTS_NOISE = 0.03  # a rate (Edgent's deadline hits) moved 0.7 points between two runs
RESAMPLES = 2000
OUTCOMES = ("held", "missed", "not distinguishable", "not measured")

Samples = Sequence[float] | Sequence[Sequence[float]]  # one series, or groups (a pair's devices)


def _groups(values: Samples) -> list[np.ndarray]:
    if values and isinstance(values[0], Sequence | np.ndarray):
        return [np.asarray(v, dtype=float) for v in values if len(v)]  # type: ignore[arg-type]
    return [np.asarray(values, dtype=float)] if len(values) else []


def _statistic(groups: list[np.ndarray]) -> float:
    """The mean of the groups' means (a device with more frames does not outweigh its partner)."""
    return float(np.mean([g.mean() for g in groups]))


def _blocks(n: int, rng: np.random.Generator) -> np.ndarray:
    """RESAMPLES rows of ``n`` indices drawn with replacement."""
    return rng.integers(0, n, size=(RESAMPLES, n))


def _resampled(
    groups: list[np.ndarray], rng: np.random.Generator, index: np.ndarray | None = None
) -> np.ndarray:
    """RESAMPLES bootstrap replicates of ``_statistic`` (``index``: the rows to draw, shared
    with a paired series)."""
    means = [g[index if index is not None else _blocks(len(g), rng)].mean(axis=1) for g in groups]
    return np.mean(means, axis=0)


@dataclass(frozen=True)
class Claim:
    """``what`` against ``against``: below it, above it, at most it (not above: a tie holds),
    or within ``noise`` of it; the margin relative (mine / other − 1) or in points (mine −
    other), with its 95% interval."""

    what: str
    against: str
    kind: str  # below, above, at most, within
    mine: float | None
    other: float | None
    low: float | None = None
    high: float | None = None
    relative: bool = True
    noise: float = RELATIVE_NOISE
    unit: str = "s"

    @property
    def margin(self) -> float | None:
        if self.mine is None or self.other is None or (self.relative and self.other == 0):
            return None
        return self.mine / self.other - 1.0 if self.relative else self.mine - self.other

    @property
    def outcome(self) -> str:
        m, low, high, noise = self.margin, self.low, self.high, self.noise
        if m is None or low is None or high is None:
            return "not measured"
        if self.kind == "within":
            if abs(m) <= noise:
                return "held"
            return "missed" if low > noise or high < -noise else "not distinguishable"
        if self.kind == "at most":
            if m <= noise:
                return "held"
            return "missed" if low > 0 else "not distinguishable"
        sign = -1.0 if self.kind == "below" else 1.0
        if sign * m > noise and sign * low > 0 and sign * high > 0:
            return "held"
        if sign * m < -noise and sign * low < 0 and sign * high < 0:
            return "missed"
        return "not distinguishable"

    def _number(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.4g} {self.unit}".strip() if self.unit else f"{value:.4g}"

    def percent(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{100 * value:+.1f}%" if self.relative else f"{100 * value:+.1f} points"

    def line(self) -> str:
        """``what`` 1.26 s vs edge-only 2.10 s: -40.1% (95% -52.0..-28.3%; noise ±5%): held."""
        noise = f"{100 * self.noise:.0f}%" if self.relative else f"{100 * self.noise:.0f} points"
        wanted = {
            "below": "below",
            "above": "above",
            "at most": "at most",
            "within": "within ±" + noise + " of",
        }
        interval = f"{self.percent(self.low)}..{self.percent(self.high)}"
        margin = self.percent(self.margin)
        return (
            f"{self.what} {self._number(self.mine)} vs {self.against} "
            f"{self._number(self.other)} (wanted {wanted[self.kind]}): {margin} "
            f"(95% interval {interval}; noise ±{noise}): {self.outcome}"
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"margin": self.margin, "outcome": self.outcome}


def compare(
    what: str,
    mine: Samples,
    kind: str,
    against: str,
    other: Samples | float,
    *,
    relative: bool = True,
    noise: float | None = None,
    unit: str = "s",
    paired: bool = False,
    seed: int = 0,
) -> Claim:
    """The claim ``what`` ``kind`` ``against``, from the numbers shown: per-frame (or per-task)
    values on both sides, or a fixed ``other`` (an analytic cost) to be within ``noise`` of.
    ``paired``: value i on both sides met the same conditions (the same channel draw), so they
    are resampled together and what they shared cancels."""
    if kind not in ("below", "above", "at most", "within"):
        raise ValueError(f"a claim is below, above, at most or within, not {kind!r}")
    noise = noise if noise is not None else (RELATIVE_NOISE if relative else POINTS_NOISE)
    rng = np.random.default_rng(seed)
    mine_groups = _groups(mine)
    other_groups = _groups(other) if not isinstance(other, float | int) else None
    fixed = float(other) if isinstance(other, float | int) else None
    unknown = fixed is not None and not math.isfinite(fixed)
    if not mine_groups or (other_groups is not None and not other_groups) or unknown:
        return Claim(what, against, kind, None, None, relative=relative, noise=noise, unit=unit)
    index = None
    if paired:
        sizes = {len(g) for g in mine_groups + (other_groups or [])}
        if len(sizes) != 1 or len(mine_groups) != 1 or len(other_groups or []) != 1:
            raise ValueError("a paired claim compares two series of one length")
        index = _blocks(sizes.pop(), rng)
    a, a_boot = _statistic(mine_groups), _resampled(mine_groups, rng, index)
    if other_groups is not None:
        b, b_boot = _statistic(other_groups), _resampled(other_groups, rng, index)
    else:
        assert fixed is not None
        b, b_boot = fixed, np.full(RESAMPLES, fixed)
    if relative and (b == 0 or np.any(b_boot == 0)):
        return Claim(what, against, kind, a, b, relative=relative, noise=noise, unit=unit)
    margins = a_boot / b_boot - 1.0 if relative else a_boot - b_boot
    low, high = (float(q) for q in np.quantile(margins, [0.025, 0.975]))
    return Claim(what, against, kind, a, b, low, high, relative, noise, unit)


@dataclass
class Verdict:
    """What the user should have seen, each claim as measured, and — when not every claim
    held — why, in a line."""

    expected: str
    claims: list[Claim] = field(default_factory=list)
    why: str | None = None

    @property
    def outcome(self) -> str:
        outcomes = {c.outcome for c in self.claims}
        if not outcomes:
            return "not measured"
        if outcomes == {"held"}:
            return "held"
        for bad in ("missed", "not measured"):
            if bad in outcomes:
                return bad
        return "not distinguishable"

    @property
    def held(self) -> bool:
        return self.outcome == "held"

    def lines(self) -> list[str]:
        """What the CLI prints: expected, measured (a line per claim), the verdict (and why)."""
        said = {
            "held": "held",
            "missed": "NOT held",
            "not distinguishable": "not distinguishable (the margin is inside the noise)",
            "not measured": "NOT measured",
        }[self.outcome]
        verdict = f"verdict: {said}" + (f": {self.why}" if self.why and not self.held else "")
        return [
            f"expected: {self.expected}",
            *(f"measured: {c.line()}" for c in self.claims),
            verdict,
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "held": self.held,
            "outcome": self.outcome,
            "claims": [c.as_json() for c in self.claims],
            "why": None if self.held else self.why,
        }
