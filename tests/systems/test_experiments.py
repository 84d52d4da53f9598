"""The papers' experiments, in their quick form: files written, and the papers' claims hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coinfer.apps.experiments import run_experiment
from coinfer.cli import app

runner = CliRunner()


def _png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_neurosurgeon_quick(tmp_path: Path) -> None:
    result = run_experiment("neurosurgeon", tmp_path, quick=True)
    out = tmp_path / "neurosurgeon"
    assert (out / "table.md").read_text().startswith("# neurosurgeon")
    assert json.loads((out / "table.json").read_text())["rows"] == result.rows
    assert result.plots and all(_png(p) for p in result.plots)
    for row in result.rows:  # Neurosurgeon never loses to its own baselines
        assert row["latency_s"] <= min(row["edge_only_s"], row["device_only_s"]) + 1e-12
    alexnet = {r["network"]: r["cut"] for r in result.rows if r["model"] == "alexnet"}
    assert alexnet["3g"] >= alexnet["lte"] >= alexnet["wifi"]  # slower link: cut nearer the device


def test_edgent_quick(tmp_path: Path) -> None:
    result = run_experiment("edgent", tmp_path, quick=True)
    assert all(_png(p) for p in result.plots) and len(result.plots) == 3
    checks = [r for r in result.rows if r["part"] == "predicted-vs-measured"]
    assert {r["exit"] for r in checks} == {1, 2, 3, 4, 5}
    assert all(r["latency_s"] > 0 and r["predicted_s"] > 0 for r in checks)
    by_req = [r["accuracy"] for r in result.rows if r["part"] == "vs-requirement"]
    by_bw = [r["accuracy"] for r in result.rows if r["part"] == "vs-bandwidth"]
    assert by_req == sorted(by_req) and by_bw == sorted(by_bw)
    dynamic = [r for r in result.rows if r["part"] == "dynamic"]
    for setting in {r["setting"] for r in dynamic}:
        rows = {r["policy"]: r for r in dynamic if r["setting"] == setting}
        assert rows["edgent-dynamic"]["hit_rate"] >= 0.9
        assert rows["edgent-dynamic"]["accuracy"] >= rows["device-only"]["accuracy"]
        assert rows["edgent-dynamic"]["hit_rate"] >= rows["edge-only"]["hit_rate"]


def test_experiment_cli_json(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["experiment", "neurosurgeon", "--quick", "--json", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"]
    bad = runner.invoke(app, ["experiment", "nope", "--quick"])
    assert bad.exit_code == 2 and "neurosurgeon" in bad.output


@pytest.mark.slow  # 40 s of experiment: `make test-slow` (the policies are tested in tests/sim)
def test_ans_quick(tmp_path: Path) -> None:
    result = run_experiment("ans", tmp_path, quick=True)
    assert len(result.plots) == 8 and all(_png(p) for p in result.plots)
    text = (tmp_path / "ans" / "table.md").read_text()
    assert text.count("\n## ") == 8 and "## tiny_yolov2 / hsdpa" in text  # a table per scenario
    rows = {(r["model"], r["scenario"], r["policy"]): r for r in result.rows}
    assert len(rows) == 2 * 4 * 12
    for (model, scenario, policy), row in rows.items():
        oracle = rows[(model, scenario, "oracle")]
        assert row["regret_s"] >= 0 and oracle["regret_s"] == 0
        if policy == "best-fixed":  # the Oracle at least matches the best fixed cut
            assert oracle["mean_delay_s"] <= row["mean_delay_s"] * 1.02
        if scenario in ("network-change", "edge-change"):
            assert "after_change_s" in row
    for model in ("vgg16", "tiny_yolov2"):  # in a stationary world the learner finds the cut
        assert rows[(model, "stationary", "mulinucb-discounted")]["vs_oracle"] < 1.1


def test_stopping_quick(tmp_path: Path) -> None:
    result = run_experiment("stopping", tmp_path, quick=True)
    assert len(result.plots) == 2 and all(_png(p) for p in result.plots)
    rows = result.rows
    names = {"optimal", "osla", "device-only", "edge-only", "fixed", "myopic", "prophet"}
    assert {r["policy"] for r in rows} == names
    for row in rows:
        assert {"setting", "policy", "mean_cost", "ci95", "analytic_cost"} <= set(row)
    settings = {r["setting"] for r in rows}
    by = {(r["setting"], r["policy"]): r for r in rows}
    for setting in settings:  # the optimal rule's exact cost is the least but the prophet's
        best = by[(setting, "optimal")]["analytic_cost"]
        for policy in names - {"optimal", "prophet"}:
            assert best <= by[(setting, policy)]["analytic_cost"] * (1 + 1e-9)
    inside = [r["analytic_within_ci"] for r in rows if r["analytic_cost"] is not None]
    assert sum(inside) >= 0.85 * len(inside)  # 95% intervals: most, not all, cover
    familywise = [r["analytic_within_ci_familywise"] for r in rows if r["analytic_cost"]]
    assert sum(familywise) >= len(familywise) - 1
    assert all(by[(s, "prophet")]["minus_optimal"] <= 0 for s in settings)  # same draws


def test_cans_quick(tmp_path: Path) -> None:
    result = run_experiment("cans", tmp_path, quick=True, engine="serial")
    out = tmp_path / "cans"
    assert {p.name for p in result.plots} == {
        f"{kind}_{learner}.png"
        for kind in ("latency_over_time", "ablation", "messages")
        for learner in ("paper", "link")
    }
    assert all(_png(p) for p in result.plots)
    assert len(list((out / "experience" / "3g-M10-seed0").glob("device-*.json"))) == 10
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert {"noncoop", "fedlinucb", "fedlinucb-d", "fedlinucb-dw"} <= {r["policy"] for r in rows}
    assert {r["world"] for r in rows} == {"prototype", "mixed", "3g"}
    assert {r["types"] for r in rows if r["world"] == "mixed"} == {2}
    oracle = {
        (r["world"], r["learner"], r["devices"]): r["mean_latency_s"]
        for r in rows
        if r["policy"] == "oracle"
    }
    for row in rows:
        assert {"policy", "devices", "mean_latency_s", "messages"} <= row.keys()
        cooperative = row["policy"].startswith("fedlinucb")
        assert (row["messages"] > 0) == cooperative  # only cooperation talks
        # nothing beats the (greedy, per-frame) Oracle by more than noise
        assert (
            row["mean_latency_s"] >= 0.97 * oracle[(row["world"], row["learner"], row["devices"])]
        )
    periodic = [r["messages_per_device"] for r in rows if r["policy"] == "fedlinucb-dw-periodic"]
    triggered = [r["messages_per_device"] for r in rows if r["policy"] == "fedlinucb-dw"]
    assert all(t < p for t, p in zip(triggered, periodic, strict=True))


def test_cans_engine_errors_are_clear(tmp_path: Path) -> None:
    result = runner.invoke(app, ["experiment", "cans", "--engine", "gpu", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown engine 'gpu'" in result.output
    result = runner.invoke(
        app, ["experiment", "ans", "--engine", "ray", "--quick", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
