"""Running an experiment's independent jobs: local processes by default, Ray when asked.

Each job is a pure function of its arguments (seeds included), so the engine cannot change a
result, only where it is computed: the same jobs give the same rows on one process, on a pool
of local processes, and on a Ray cluster (``pip install 'coinfer[distributed]'``;
``RAY_ADDRESS`` selects a running cluster, otherwise Ray starts a local one).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from coinfer.errors import BadValueError
from coinfer.systems.base import JobRunner

ENGINES = ("local", "serial", "ray")
Progress = Callable[[str, int, int], None]


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def run_jobs(
    func: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    engine: str = "local",
    workers: int | None = None,
    progress: Progress | None = None,
    label: str = "jobs",
) -> list[Any]:
    """``func(*job)`` for every job, results in the jobs' order."""
    if engine not in ENGINES:
        raise BadValueError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    results: list[Any] = [None] * len(jobs)

    def tick(done: int) -> None:
        if progress is not None:
            progress(label, done, len(jobs))

    if engine == "serial" or (engine == "local" and (workers or os.cpu_count() or 1) == 1):
        for k, job in enumerate(jobs):
            results[k] = func(*job)
            tick(k + 1)
        return results
    if engine == "ray":
        return _run_ray(func, jobs, workers, tick)
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        futures = {pool.submit(func, *job): k for k, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            tick(done)
    return results


def engine_jobs(engine: str = "local", workers: int | None = None) -> JobRunner:
    """A system's job runner (``systems.base.JobRunner``) on ``engine``."""
    if engine not in ENGINES:
        raise BadValueError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")

    def run(
        func: Callable[..., Any],
        jobs: Sequence[tuple[Any, ...]],
        progress: Progress | None = None,
        label: str = "jobs",
    ) -> list[Any]:
        return run_jobs(func, jobs, engine, workers, progress, label)

    return run


def _run_ray(
    func: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    workers: int | None,
    tick: Callable[[int], None],
) -> list[Any]:
    if not ray_available():
        raise RuntimeError(
            "the ray engine needs Ray: pip install 'coinfer[distributed]' (or use --engine local)"
        )
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    try:
        remote = ray.remote(func)
        refs = [remote.remote(*job) for job in jobs]
        index = {ref: k for k, ref in enumerate(refs)}
        results: list[Any] = [None] * len(jobs)
        pending = list(refs)
        done = 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                results[index[ref]] = ray.get(ref)
                done += 1
                tick(done)
        return results
    finally:
        if started:
            ray.shutdown()
