"""Per-op wall time on this host: warm-up, repeats, medians, a fixed thread count."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor

from coinfer.graph.partitioning import Partitioning


class _TimingInterpreter(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.samples: dict[str, list[float]] = {}

    def run_node(self, n: fx.Node) -> Any:
        if not n.op.startswith("call_"):
            return super().run_node(n)
        start = time.perf_counter()
        result = super().run_node(n)
        self.samples.setdefault(n.name, []).append(time.perf_counter() - start)
        return result


def profile_ops(
    part: Partitioning,
    inputs: Sequence[Tensor],
    repeats: int = 10,
    warmup: int = 2,
    flush_bytes: int = 0,
) -> dict[str, float]:
    """Median seconds of every op of ``part``, run in place inside the whole model (so caches
    and the allocator see what they see in a real run). ``flush_bytes`` > 0 sweeps a buffer of
    that size through the caches before each run, so a network of a single layer is timed with
    cold weights and a warm input, as the layer would run inside a real model (the previous
    layer has just written its input; its weights were last read a frame ago)."""
    interp = _TimingInterpreter(part.graph_module)
    scratch = torch.zeros(flush_bytes // 4) if flush_bytes > 0 else None
    with torch.inference_mode():
        for _ in range(warmup):
            interp.run(*inputs)
        interp.samples.clear()
        for _ in range(repeats):
            if scratch is not None:
                scratch.add_(1.0)
                for x in inputs:
                    x.add_(0.0)  # written just now, as the previous layer would have
            interp.run(*inputs)
    return {name: statistics.median(times) for name, times in interp.samples.items()}


def median_seconds(fn: Callable[[], Any], repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` (inference mode, after warm-up)."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)
