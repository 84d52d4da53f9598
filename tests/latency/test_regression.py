"""Per-layer regressions: the fit recovers known models; a real sweep fits and reloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coinfer import partition, zoo
from coinfer.cli import app
from coinfer.latency.devices import RegressionDevice, compute_seconds, resolve_device
from coinfer.latency.regression import FEATURES, Sample, fit_kind, fixed_cost, mape


def test_fit_recovers_a_known_linear_model() -> None:
    samples = [
        Sample("fc", {"macs": m, "in_elements": i, "out_elements": o}, 2e-9 * m + 1e-8 * o + 5e-6)
        for m, i, o in [
            (1e5, 256, 400),
            (4e6, 1024, 4000),
            (9e6, 9216, 1000),
            (2e5, 512, 400),
            (1.6e7, 4096, 4096),
            (6e5, 2304, 256),
        ]
    ]
    model = fit_kind("fc", samples)
    assert model.features == FEATURES["fc"]
    assert model.weights == pytest.approx((2e-9, 0.0, 1e-8), rel=1e-6, abs=1e-15)
    assert model.intercept == pytest.approx(5e-6, rel=1e-6)
    assert mape(model, samples) < 1e-9


def test_a_real_sweep_fits_saves_and_reloads(tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    result = CliRunner().invoke(
        app, ["profile", "--per-kind", "6", "--models", "mlp", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["whole_model"][0]["model"] == "mlp"
    assert {"conv", "fc", "act"} <= set(report["per_kind_test_mape"])
    record = json.loads(out.read_text())
    assert record["measurements"] and all(m["seconds"] > 0 for m in record["measurements"])
    device = resolve_device(f"fit:{out}")
    assert isinstance(device, RegressionDevice)
    part = partition(zoo.create("resnet18"), zoo.example_inputs("resnet18"))
    assert compute_seconds(device, part.ops) > 0
    bad = CliRunner().invoke(app, ["profile", "--device", "rpi3"])
    assert bad.exit_code == 2 and "only this host" in bad.output


def test_fit_with_a_warm_fixed_cost_recovers_the_slopes() -> None:
    truth = (3e-9, 0.0, 2e-8)
    sizes = [
        (1e5, 256, 400),
        (4e6, 1024, 4000),
        (9e6, 9216, 1000),
        (2e5, 512, 400),
        (1.6e7, 4096, 4096),
        (6e5, 2304, 256),
    ]
    samples = [
        Sample(
            "fc",
            {"macs": m, "in_elements": i, "out_elements": o},
            30e-6 + truth[0] * m + truth[2] * o,
        )
        for m, i, o in sizes
    ]
    model = fit_kind("fc", samples, intercept=30e-6)
    assert model.intercept == 30e-6
    assert model.weights == pytest.approx(truth, rel=1e-6, abs=1e-15)
    warm = [Sample("fc", {}, t) for t in (30e-6, 31e-6, 29e-6, 200e-6, 900e-6, 5e-3, 7e-3, 1e-2)]
    assert fixed_cost(warm) == pytest.approx(29.5e-6)  # the smallest quarter's median
