"""Link model: constant and trace bandwidth, integrated across changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinfer.data import trace_names, trace_path
from coinfer.latency.link import ConstantBandwidth, Link, TraceBandwidth
from coinfer.units import parse_bandwidth


def test_parse_bandwidth_units() -> None:
    assert parse_bandwidth("1mbps") == 1e6
    assert parse_bandwidth("50kbps") == 5e4
    assert parse_bandwidth("2.5 Mbit/s") == 2.5e6
    assert parse_bandwidth(300.0) == 300.0
    for bad in ("fast", "1 parsec", "-3mbps", "0kbps"):
        with pytest.raises(ValueError, match="bandwidth"):
            parse_bandwidth(bad)


def test_constant_link_adds_half_the_rtt_per_direction() -> None:
    link = Link(ConstantBandwidth(1e6), rtt_s=0.02)
    assert link.upload_seconds(12_500) == pytest.approx(0.1 + 0.01)
    assert link.download_seconds(125) == pytest.approx(0.001 + 0.01)
    assert link.upload_seconds(0) == 0.0  # nothing sent costs nothing


def test_trace_transfer_integrates_across_a_change() -> None:
    trace = TraceBandwidth((0.0, 1.0, 2.0), (1e6, 4e6, 2e6), loop=False)
    # 1.5 Mbit from t=0.5: 0.5 Mbit in the first half second, then 1 Mbit at 4 Mbit/s.
    assert trace.transfer_seconds(1.5e6, 0.5) == pytest.approx(0.5 + 0.25)
    # Past the last sample the last rate holds when the trace does not loop.
    assert trace.transfer_seconds(4e6, 2.0) == pytest.approx(2.0)
    assert trace.at(1.5) == 4e6


def test_trace_loops() -> None:
    trace = TraceBandwidth((0.0, 1.0), (1e6, 3e6), loop=True)
    assert trace.period == pytest.approx(2.0)
    assert trace.at(2.5) == 1e6 and trace.at(3.5) == 3e6
    # 5 Mbit from t=1: 3 Mbit in [1,2), 1 Mbit in [2,3), then 1 Mbit at 3 Mbit/s.
    assert trace.transfer_seconds(5e6, 1.0) == pytest.approx(2.0 + 1 / 3)
    assert trace.mean_bps() == pytest.approx(2e6)


def test_shipped_hsdpa_traces_load(tmp_path: Path) -> None:
    assert len(trace_names()) == 6
    trace = TraceBandwidth.from_file(trace_path("norway_bus_1"))
    assert len(trace.times) == 266 and trace.times[0] == 0.0
    assert min(trace.bps) > 0.3e6 and max(trace.bps) < 5e6
    half = TraceBandwidth.from_file(trace_path("norway_bus_1"), scale=0.5)
    assert half.mean_bps() == pytest.approx(trace.mean_bps() / 2)
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("time_s,mbps\n0,1.0\n2,3.0\n")
    assert TraceBandwidth.from_file(csv_file).at(2.5) == 3e6
    bad = tmp_path / "bad.tsv"
    bad.write_text("0\t1.0\n1\tfast\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        TraceBandwidth.from_file(bad)
    with pytest.raises(ValueError, match="norway_bus_1"):
        trace_path("nowhere")


def test_transfers_that_start_on_sample_boundaries_finish() -> None:
    """Float time stamps: a transfer starting exactly where a sample ends must move on."""
    trace = TraceBandwidth.from_file(trace_path("norway_car_1"), scale=0.5)
    for loop in range(3):
        for t in trace.times[1:50]:
            start = loop * trace.period + t
            seconds = trace.transfer_seconds(98_304.0, start)
            assert 0 < seconds < 98_304.0 / min(trace.bps) + 1e-9
