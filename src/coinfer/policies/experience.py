"""Offline experience for warm starts (CANS's W): what a device measured before going online.

A device of a collaborative system has usually run an early-exit version of its model before
(BranchyNet-style: an exit after each downsampling stage), split at those exits, against an
edge and a link that were not today's. Each such frame left a record: the cut, the bytes sent,
the measured upload, edge and reply times, and the uplink rate that upload achieved.
``collect_experience`` produces those records by running the device's model split at its exit
points in a simulated *earlier* environment (another stretch of the link, an edge with its own
load); they are saved to and loaded from a JSON file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coinfer.errors import BadValueError
from coinfer.graph.types import CutTable
from coinfer.policies.types import Action, Environment, plausible

FORMAT = "coinfer-experience/1"


@dataclass(frozen=True)
class ExperienceRecord:
    cut: int
    bytes_sent: int
    uplink_s: float
    edge_s: float
    downlink_s: float
    link_bps: float | None  # the uplink rate this frame's upload achieved (None: nothing sent)


@dataclass(frozen=True)
class Experience:
    model: str
    device: str
    edge: str
    environment: str
    exit_cuts: tuple[int, ...]
    records: tuple[ExperienceRecord, ...]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, **asdict(self)}
        path.write_text(json.dumps(doc, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Experience:
        path = Path(path)
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise BadValueError(
                f"{path}: no such experience file (coinfer fleet --experience DIR makes them)"
            ) from None
        except json.JSONDecodeError as exc:
            raise BadValueError(f"{path}: not an experience file (bad JSON: {exc})") from exc
        if doc.get("format") != FORMAT:
            raise BadValueError(f"{path}: not a {FORMAT} file (format {doc.get('format')!r})")
        try:
            records = tuple(ExperienceRecord(**r) for r in doc["records"])
            return cls(
                doc["model"],
                doc["device"],
                doc["edge"],
                doc["environment"],
                tuple(doc["exit_cuts"]),
                records,
            )
        except (KeyError, TypeError) as exc:
            raise BadValueError(
                f"{path}: an experience file with a missing or bad field: {exc}"
            ) from exc

    def check_fits(self, model: str, last_cut: int) -> None:
        """Experience of another model (or beyond its cuts) cannot warm-start this one."""
        if self.model != model:
            raise BadValueError(f"experience of model {self.model!r} cannot warm-start {model!r}")
        if any(not 0 <= r.cut < last_cut for r in self.records):
            raise BadValueError(f"experience for {model!r} has cuts outside 0..{last_cut - 1}")


def exit_cuts(part: CutTable, max_exits: int = 6) -> tuple[int, ...]:
    """Where a BranchyNet-style early-exit version of the model has its exits: the cuts right
    after each pooling stage (the last cut excluded), or evenly spaced cuts for models without
    pooling; at most ``max_exits`` of them, spread over the model."""
    pooled = [
        c.index
        for c in part.cuts[1:-1]
        if c.num_device_ops > 0 and part.ops[c.num_device_ops - 1].kind == "pool"
    ]
    if not pooled:
        pooled = sorted({max(1, round(part.last * q / 4)) for q in (1, 2, 3)} - {part.last})
    if len(pooled) > max_exits:
        step = len(pooled) / max_exits
        pooled = [pooled[int(i * step)] for i in range(max_exits)]
    return tuple(pooled)


def collect_experience(
    env: Environment,
    exits: tuple[int, ...],
    frames: int,
    model: str,
    device: str,
    edge: str,
    environment: str,
) -> Experience:
    """Run ``frames`` frames in ``env`` (a simulator, or the live runtime: experience measured
    for real), split at the exit points in turn, and keep a record of each."""
    if not exits:
        raise BadValueError("the early-exit model needs at least one exit point to split at")
    if frames < 1:
        raise BadValueError(f"frames must be at least 1, got {frames}")
    records = []
    for i in range(frames):
        env.observe()
        cut = exits[i % len(exits)]
        fb = env.step(Action(cut))
        if fb is None:
            raise BadValueError("experience is made frame by frame, not in a stage-wise world")
        if not plausible(fb) or fb.bytes_sent == 0:
            continue  # the frame fell back (live): it measured nothing of the edge
        rate = 8.0 * fb.bytes_sent / fb.uplink_s if fb.bytes_sent > 0 and fb.uplink_s > 0 else None
        records.append(
            ExperienceRecord(cut, fb.bytes_sent, fb.uplink_s, fb.edge_s, fb.downlink_s, rate)
        )
    return Experience(model, device, edge, environment, exits, tuple(records))
