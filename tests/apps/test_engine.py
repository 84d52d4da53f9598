"""The sweep engine: the same jobs give the same results serially, on local processes, on Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinfer.apps.engine import ray_available, run_jobs
from coinfer.systems.cans import fleet as cans
from coinfer.systems.cans import worlds


def _jobs(folder: Path) -> list[tuple]:
    files = worlds.experience_files(2, 1, 0, folder)
    return [(2, 1, policy, 0, 40, files, {}) for policy in ("noncoop", "fedlinucb-dw", "oracle")]


def _comparable(results: list[dict]) -> list[tuple]:
    return [
        (r["policy"], r["mean_latency_s"], r["regret_s"], r["messages"], r["curve"])
        for r in results
    ]


def test_local_processes_give_the_serial_results(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    seen: list[int] = []
    serial = run_jobs(
        cans.run_case, jobs, "serial", progress=lambda _w, done, _t: seen.append(done)
    )
    assert seen == [1, 2, 3]
    local = run_jobs(cans.run_case, jobs, "local", workers=2)
    assert _comparable(local) == _comparable(serial)
    assert [r["policy"] for r in serial] == ["noncoop", "fedlinucb-dw", "oracle"]
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        run_jobs(cans.run_case, jobs, "gpu")


@pytest.mark.skipif(not ray_available(), reason="Ray is not installed (coinfer[distributed])")
def test_ray_gives_the_serial_results(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    serial = run_jobs(cans.run_case, jobs, "serial")
    on_ray = run_jobs(cans.run_case, jobs, "ray", workers=2)
    assert _comparable(on_ray) == _comparable(serial)
