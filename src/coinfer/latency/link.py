"""The link: how long bytes take to cross it, under a constant or time-varying bandwidth.

Transfer time = bits / bandwidth + RTT/2 per direction (DESIGN §3). Under a trace, the bits are
integrated over the piecewise-constant throughput from the moment the transfer starts, so a
transfer that straddles a bandwidth change takes the time it really would.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from coinfer.errors import BadValueError
from coinfer.units import parse_bandwidth

_TIME_COLUMNS = ("time_s", "time", "t", "timestamp", "seconds", "s")
_RATE_COLUMNS = ("mbps", "mbit/s", "throughput_mbps", "bandwidth_mbps", "mbit_s", "throughput")


def _csv_rows(path: Path, reader: csv.DictReader[str]) -> list[tuple[float, float]]:
    """A CSV trace's (time s, Mbit/s) rows: a time column and a Mbit/s column, by name."""
    fields = {name.strip().lower(): name for name in reader.fieldnames or ()}
    time_col = next((fields[c] for c in _TIME_COLUMNS if c in fields), None)
    rate_col = next((fields[c] for c in _RATE_COLUMNS if c in fields), None)
    if time_col is None or rate_col is None:
        raise BadValueError(
            f"trace {str(path)!r}: a CSV trace needs a time column (time_s) and a "
            f"Mbit/s column (mbps); its columns are "
            f"{', '.join(reader.fieldnames or ()) or 'none'}"
        )
    rows = []
    for line_no, rec in enumerate(reader, start=2):
        try:
            rows.append((float(rec[time_col]), float(rec[rate_col])))
        except (TypeError, ValueError):
            raise BadValueError(
                f"{path}:{line_no}: {time_col}={rec.get(time_col)!r}, "
                f"{rate_col}={rec.get(rate_col)!r} are not numbers"
            ) from None
    return rows


class Bandwidth(Protocol):
    def at(self, t: float) -> float:
        """Bits per second at time ``t`` (seconds)."""
        ...

    def transfer_seconds(self, bits: float, start: float) -> float:
        """Seconds to deliver ``bits`` starting at ``start``."""
        ...


@dataclass(frozen=True)
class ConstantBandwidth:
    bps: float

    def at(self, t: float) -> float:
        return self.bps

    def transfer_seconds(self, bits: float, start: float) -> float:
        return bits / self.bps

    def transfer_seconds_many(self, bits: np.ndarray, starts: np.ndarray) -> np.ndarray:
        return np.asarray(bits, dtype=float) / self.bps


@dataclass
class BlockBandwidth:
    """A rate set block by block as a channel fades (a stage-wise world sets it to R(h_l) when
    stage l begins): a rate trace played as it is drawn."""

    bps: float

    def set(self, bps: float) -> None:
        if not bps > 0:
            raise BadValueError(f"a block's rate must be positive, got {bps}")
        self.bps = float(bps)

    def at(self, t: float) -> float:
        return self.bps

    def transfer_seconds(self, bits: float, start: float) -> float:
        return bits / self.bps


@dataclass(frozen=True)
class TraceBandwidth:
    """Piecewise-constant throughput: ``bps[i]`` holds from ``times[i]`` to ``times[i+1]``; the
    last sample holds for the median sample interval, then the trace repeats (``loop``)."""

    times: tuple[float, ...]
    bps: tuple[float, ...]
    name: str = "trace"
    loop: bool = True
    period_s: float | None = None  # the loop's length; by default one median step past the last
    _period: float = field(init=False, repr=False)
    _cumulative: np.ndarray = field(init=False, repr=False)
    _arrays: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.times) != len(self.bps) or not self.times:
            raise BadValueError("a trace needs as many throughput samples as time stamps, and one")
        if any(b <= 0 for b in self.bps):
            raise BadValueError(f"trace {self.name}: throughput samples must be positive")
        if list(self.times) != sorted(self.times) or self.times[0] != 0:
            raise BadValueError(f"trace {self.name}: time stamps must start at 0 and increase")
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 1.0
        period = self.times[-1] + step if self.period_s is None else self.period_s
        if not period > self.times[-1]:
            raise BadValueError(f"trace {self.name}: the period must end after the last sample")
        object.__setattr__(self, "_period", period)
        widths = np.diff([*self.times, period])
        cumulative = np.concatenate([[0.0], np.cumsum(widths * np.asarray(self.bps))])
        object.__setattr__(self, "_cumulative", cumulative)  # bits delivered by each sample start
        object.__setattr__(self, "_arrays", (np.asarray(self.times), np.asarray(self.bps)))

    @classmethod
    def from_file(cls, path: str | Path, scale: float = 1.0, loop: bool = True) -> TraceBandwidth:
        """Read an HSDPA trace (``time_s<TAB>Mbit/s``) or a CSV with ``time_s`` and ``mbps``
        columns; ``scale`` multiplies every throughput (x0.5 for a slower uplink)."""
        path = Path(path)
        rows: list[tuple[float, float]] = []
        try:
            with path.open() as fh:
                if path.suffix.lower() == ".csv":
                    rows = _csv_rows(path, csv.DictReader(fh))
                else:
                    for line_no, line in enumerate(fh, start=1):
                        if not line.strip() or line.lstrip().startswith("#"):
                            continue
                        parts = line.split()
                        try:
                            rows.append((float(parts[0]), float(parts[1])))
                        except (IndexError, ValueError):
                            raise BadValueError(
                                f"{path}:{line_no}: expected 'time_s<TAB>Mbit/s', "
                                f"got {line.strip()[:80]!r}"
                            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadValueError(f"cannot read trace {str(path)!r}: {exc}") from None
        if not rows:
            raise BadValueError(f"trace {str(path)!r} holds no samples")
        times = [t for t, _ in rows]
        if any(b < a for a, b in itertools.pairwise(times)) or any(
            not (math.isfinite(m) and m >= 0) for _, m in rows
        ):
            raise BadValueError(
                f"trace {str(path)!r}: times must not go back and throughputs "
                f"must be finite and >= 0"
            )
        if not any(m > 0 for _, m in rows):
            raise BadValueError(f"trace {str(path)!r}: every throughput is 0")
        t0 = rows[0][0] if rows else 0.0
        return cls(
            tuple(t - t0 for t, _ in rows),
            tuple(m * 1e6 * scale for _, m in rows),
            name=path.stem,
            loop=loop,
        )

    @property
    def period(self) -> float:
        return self._period

    def _index(self, t: float) -> tuple[int, float]:
        """Sample index at ``t`` and the start of the loop it falls in."""
        base = (t // self._period) * self._period if self.loop else 0.0
        local = t - base
        i = max(0, bisect.bisect_right(self.times, local) - 1)
        return i, base

    def at(self, t: float) -> float:
        return self.bps[self._index(t)[0]]

    def transfer_seconds(self, bits: float, start: float) -> float:
        # Walk the samples by index from the one holding at ``start``: recomputing the index
        # from a float time at each boundary can land back in the same sample forever.
        i, base = self._index(start)
        remaining, t = bits, start
        while True:
            rate = self.bps[i]
            if i + 1 < len(self.times):
                end = base + self.times[i + 1]
            else:
                end = base + self._period if self.loop else float("inf")
            capacity = rate * max(0.0, end - t)
            if capacity >= remaining:
                return t + remaining / rate - start
            remaining -= capacity
            t = end
            i += 1
            if i == len(self.times):
                i, base = 0, base + self._period

    def _bits_by(self, t: np.ndarray) -> np.ndarray:
        """Bits a transfer running from time 0 would have delivered by ``t``."""
        (times, bps), cum = self._arrays, self._cumulative
        if self.loop:
            loops = np.floor(t / self._period)
            local = t - loops * self._period
        else:
            loops, local = np.zeros_like(t), t
        i = np.clip(np.searchsorted(times, local, side="right") - 1, 0, len(times) - 1)
        return np.asarray(loops * cum[-1] + cum[i] + (local - times[i]) * bps[i])

    def _time_of(self, bits: np.ndarray) -> np.ndarray:
        """The inverse of ``_bits_by``: when the cumulative delivery reaches ``bits``."""
        (times, bps), cum = self._arrays, self._cumulative
        if self.loop:
            loops = np.floor(bits / cum[-1])
            local = bits - loops * cum[-1]
            base = loops * self._period
        else:
            local, base = bits, np.zeros_like(bits)
        i = np.clip(np.searchsorted(cum[:-1], local, side="right") - 1, 0, len(times) - 1)
        return np.asarray(base + times[i] + (local - cum[i]) / bps[i])

    def transfer_seconds_many(self, bits: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``transfer_seconds`` for many transfers at once, from the cumulative delivery
        curve (simulators ask for every cut at every frame)."""
        bits = np.asarray(bits, dtype=float)
        starts = np.broadcast_to(np.asarray(starts, dtype=float), bits.shape)
        done = self._bits_by(starts) + bits
        return np.where(bits > 0, self._time_of(done) - starts, 0.0)

    def mean_bps(self) -> float:
        widths = np.diff([*self.times, self._period])
        return float(np.dot(widths, self.bps) / widths.sum())


@dataclass(frozen=True)
class Link:
    """Uplink and downlink bandwidth plus a round-trip time; nothing sent costs nothing."""

    uplink: Bandwidth
    rtt_s: float = 0.0
    downlink: Bandwidth | None = None

    @property
    def one_way_s(self) -> float:
        """The propagation delay one way: half the round trip."""
        return self.rtt_s / 2

    def upload_seconds(self, nbytes: int, start: float = 0.0) -> float:
        if nbytes <= 0:
            return 0.0
        return self.uplink.transfer_seconds(8.0 * nbytes, start) + self.one_way_s

    def download_seconds(self, nbytes: int, start: float = 0.0) -> float:
        if nbytes <= 0:
            return 0.0
        down = self.downlink or self.uplink
        return down.transfer_seconds(8.0 * nbytes, start) + self.one_way_s

    @classmethod
    def constant(cls, bandwidth: str | float, rtt_s: float = 0.0) -> Link:
        return cls(ConstantBandwidth(parse_bandwidth(bandwidth)), rtt_s)
