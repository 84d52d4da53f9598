"""Device classes: Edgent's published regressions, measured host times, slowdowns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coinfer import partition, zoo
from coinfer.latency.devices import (
    EDGE_PC,
    RPI3,
    MeasuredDevice,
    ScaledDevice,
    compute_seconds,
    resolve_device,
)
from coinfer.latency.energy import RADIOS, EnergyModel
from coinfer.latency.profiler import profile_ops


def test_edgent_table_on_a_conv_layer() -> None:
    model = nn.Sequential(nn.Conv2d(3, 64, 5, padding=2), nn.ReLU()).eval()
    part = partition(model, torch.randn(1, 3, 32, 32), granularity="node")
    conv, relu = part.ops
    x1, x2 = 3 * 32 * 32, (5 / 1) ** 2 * 64
    assert RPI3.op_seconds(conv) == pytest.approx((6.13e-3 * x1 + 2.67e-2 * x2 - 9.909) / 1e3)
    assert EDGE_PC.op_seconds(conv) == pytest.approx((6.03e-5 * x1 + 1.24e-4 * x2 + 0.189) / 1e3)
    relu_in = 64 * 32 * 32
    assert RPI3.op_seconds(relu) == pytest.approx((1.5e-5 * relu_in + 0.488) / 1e3)


def test_small_layers_never_get_negative_times() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 1)).eval()
    (op,) = partition(model, torch.randn(1, 1, 4, 4)).ops
    assert RPI3.op_seconds(op) == 0.0  # the Pi's conv intercept is -9.9 ms


def test_edgent_alexnet_sanity_figures() -> None:
    """DESIGN §3: the Pi is far slower than the PC; the PC runs AlexNet in milliseconds."""
    model = zoo.create("branchy_alexnet")
    part = partition(model, zoo.example_inputs("branchy_alexnet"))
    pi, pc = compute_seconds(RPI3, part.ops), compute_seconds(EDGE_PC, part.ops)
    assert 0.3 < pi < 3.0
    assert 0.002 < pc < 0.05
    assert pi / pc > 30
    assert RPI3.load_seconds(0) == pytest.approx(0.842136)


def test_resolve_device_names() -> None:
    assert resolve_device("rpi3") is RPI3
    assert resolve_device("edge-pc") is EDGE_PC
    slow = resolve_device("host/10", host_profile=lambda: {"a": 0.5})
    assert isinstance(slow, ScaledDevice) and slow.factor == 10
    fast = resolve_device("edge-pc*10")
    assert isinstance(fast, ScaledDevice) and fast.factor == pytest.approx(0.1)
    assert fast.load_seconds(10**6) == pytest.approx(EDGE_PC.load_seconds(10**6) / 10)
    with pytest.raises(ValueError, match="positive"):
        resolve_device("rpi3/0")
    with pytest.raises(ValueError, match="rpi3"):
        resolve_device("pi5")
    with pytest.raises(ValueError, match="unknown device class 'pi5'"):
        resolve_device("pi5/2")
    with pytest.raises(ValueError, match="profile"):
        resolve_device("host")


def test_measured_host_profile_covers_every_op() -> None:
    model = zoo.create("mlp", depth=3, width=64)
    inputs = zoo.example_inputs("mlp", width=64)
    part = partition(model, inputs, granularity="node")
    seconds = profile_ops(part, inputs, repeats=3, warmup=1)
    assert set(seconds) == {op.name for op in part.ops}
    assert all(s > 0 for s in seconds.values())
    host = MeasuredDevice("host", seconds)
    slow = ScaledDevice(host, 10.0)
    assert compute_seconds(slow, part.ops) == pytest.approx(10 * compute_seconds(host, part.ops))
    other = partition(zoo.create("mlp", depth=2, width=8), zoo.example_inputs("mlp", width=8))
    with pytest.raises(KeyError, match="profiled on another model"):
        host.op_seconds(other.ops[-1].__class__(**{**other.ops[-1].__dict__, "name": "zz"}))


def test_energy_model() -> None:
    energy = EnergyModel(compute_w=3.7, radio=RADIOS["wifi"])
    joules = energy.device_joules(compute_s=0.5, upload_s=0.2, bandwidth_bps=10e6)
    assert joules == pytest.approx(3.7 * 0.5 + (0.28317 * 10 + 0.13286) * 0.2)


def test_edgent_alexnet_device_only_with_cold_start() -> None:
    """DESIGN §3's "device-only over 2 s" for Edgent's AlexNet holds once the Pi loads the
    model (Edgent's loading regression) and the FC layers are AlexNet's 4096 wide."""
    from coinfer.latency.link import Link
    from coinfer.latency.predict import predict_cut_costs
    from coinfer.zoo import BranchyAlexNet

    (x,) = zoo.example_inputs("branchy_alexnet")
    part = partition(BranchyAlexNet(fc_width=4096).exit_model(5), x)
    link = Link.constant("1mbps")
    warm = predict_cut_costs(part, RPI3, EDGE_PC, link)[-1]
    cold = predict_cut_costs(part, RPI3, EDGE_PC, link, include_loading=True)[-1]
    assert warm.total_s < 1.0 < 2.0 < cold.total_s
    assert cold.total_s - warm.total_s == pytest.approx(
        RPI3.load_seconds(part.cuts[-1].device_param_bytes)
    )
    edge_only = predict_cut_costs(part, RPI3, EDGE_PC, link, include_loading=True)[0]
    assert edge_only.device_s == 0.0 and edge_only.edge_s > EDGE_PC.load_seconds(1)
