"""Per-layer-type latency regressions fitted on this host (Neurosurgeon / Edgent style).

A sweep of synthetic single-layer networks is profiled op by op, warm for each kind's fixed
cost and with flushed caches for how time grows with size (see fit_host); one linear model per
layer kind is fitted by non-negative least squares (non-negative weights keep "more work" from
ever predicting "less time"). A quarter of the sweep is held out; the per-kind error that
matters is measured on the zoo's own layers timed inside their models, and every zoo model's
whole-network latency is predicted and measured. The fit is saved as JSON together with the
measurements that made it.
"""

from __future__ import annotations

import json
import platform
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import nnls
from torch import Tensor, nn

from coinfer import zoo
from coinfer.errors import BadValueError
from coinfer.graph.partitioning import partition
from coinfer.latency.devices import LayerModel, RegressionDevice, compute_seconds
from coinfer.latency.layers import layer_features, regression_kind
from coinfer.latency.profiler import median_seconds, profile_ops

# Larger than the last-level cache of the machines this runs on: each timed run starts cold.
FLUSH_BYTES = 64 << 20

FEATURES: dict[str, tuple[str, ...]] = {
    "conv": ("macs", "in_elements", "out_elements"),
    "conv_dw": ("depthwise_macs", "in_elements", "out_elements"),
    "fc": ("macs", "in_elements", "out_elements"),
    "pool": ("in_elements", "out_elements"),
    "act": ("in_elements",),
    "norm": ("in_elements",),
    "lrn": ("in_elements",),
    "elementwise": ("out_elements",),
    "reduce": ("in_elements",),
    "dropout": ("in_elements",),
}


class _Add(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x + x


class _Mean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean((2, 3))


def _feature_map(rng: random.Random) -> tuple[int, int]:
    return rng.choice((16, 32, 64, 128, 256)), rng.choice((7, 14, 28, 56, 112))


def synthetic_layers(per_kind: int, seed: int = 0) -> list[tuple[nn.Module, tuple[int, ...]]]:
    """Single-layer networks spanning the sizes the zoo's layers have."""
    rng = random.Random(seed)
    layers: list[tuple[nn.Module, tuple[int, ...]]] = []
    dense = depthwise = 0
    while dense < 2 * per_kind or depthwise < per_kind:
        c_in, side = rng.choice((3, 16, 32, 64, 128, 256, 512)), rng.choice((7, 14, 28, 56, 112))
        k, s = rng.choice((1, 3, 3, 5)), rng.choice((1, 1, 2))
        if depthwise < per_kind and c_in > 3 and k > 1:
            conv = nn.Conv2d(c_in, c_in, k, s, k // 2, groups=c_in)
        elif dense < 2 * per_kind:
            conv = nn.Conv2d(c_in, rng.choice((16, 32, 64, 128, 256, 512)), k, s, k // 2)
        else:
            continue
        macs = (side // s) ** 2 * conv.out_channels * (c_in // conv.groups) * k * k
        if macs <= 1.2e9:
            layers.append((conv, (1, c_in, side, side)))
            depthwise += conv.groups > 1
            dense += conv.groups == 1
    for _ in range(per_kind):
        n_in, n_out = (
            rng.choice((256, 512, 1024, 2304, 4096, 9216)),
            rng.choice((10, 256, 1024, 4096)),
        )
        layers.append((nn.Linear(n_in, n_out), (1, n_in)))
        c, side = _feature_map(rng)
        pool: nn.Module = rng.choice(
            (nn.MaxPool2d(2, 2), nn.MaxPool2d(3, 2), nn.AvgPool2d(2, 2), nn.MaxPool2d(3, 1, 1))
        )
        layers.append((pool, (1, c, side, side)))
        for make in (nn.ReLU, _Add, _Mean, nn.Dropout):
            c, side = _feature_map(rng)
            layers.append((make(), (1, c, side, side)))
        c, side = _feature_map(rng)
        layers.append((nn.BatchNorm2d(c), (1, c, side, side)))
        if rng.random() < 0.5:
            c, side = _feature_map(rng)
            layers.append((nn.LocalResponseNorm(5), (1, c, side, side)))
    return layers


@dataclass(frozen=True)
class Sample:
    kind: str
    features: dict[str, float]
    seconds: float


def measure(
    layers: Sequence[tuple[nn.Module, tuple[int, ...]]],
    repeats: int = 9,
    flush_bytes: int = FLUSH_BYTES,
    on_step: Callable[[], None] | None = None,
) -> list[Sample]:
    samples = []
    for module, shape in layers:
        x = torch.randn(shape)
        part = partition(nn.Sequential(module).eval(), x, granularity="node")
        times = profile_ops(part, (x,), repeats=repeats, warmup=2, flush_bytes=flush_bytes)
        for op in part.ops:
            kind = regression_kind(op)
            if kind in FEATURES:
                samples.append(Sample(kind, layer_features(op), times[op.name]))
        if on_step is not None:
            on_step()
    return samples


def fixed_cost(warm: Sequence[Sample]) -> float:
    """An op's fixed cost (dispatch, Python): the median warm time of the smallest quarter."""
    times = sorted(s.seconds for s in warm)
    return float(np.median(times[: max(1, len(times) // 4)])) if times else 0.0


def fit_kind(kind: str, samples: Sequence[Sample], intercept: float | None = None) -> LayerModel:
    """Least squares with non-negative weights. Given ``intercept`` (the fixed cost measured
    warm), only the size-dependent slopes are fitted, on absolute error (the big layers decide
    a model's latency); without it, slopes and intercept are fitted on relative error."""
    names = FEATURES[kind]
    x = np.array([[s.features[n] for n in names] for s in samples])
    y = np.array([s.seconds for s in samples])
    if intercept is None:
        x1 = np.hstack([x, np.ones((len(y), 1))])
        weights, _ = nnls(x1 / y[:, None], np.ones_like(y))
        return LayerModel(names, tuple(float(w) for w in weights[:-1]), float(weights[-1]))
    scale = float(np.mean(y))
    slopes, _ = nnls(x / scale, np.maximum(y - intercept, 0.0) / scale)
    return LayerModel(names, tuple(float(w) for w in slopes), intercept)


def mape(model: LayerModel, samples: Sequence[Sample]) -> float:
    errors = [abs(model.predict(s.features) - s.seconds) / s.seconds for s in samples]
    return float(np.mean(errors)) if errors else float("nan")


CHECK_MODELS = (
    "alexnet",
    "vgg16",
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "googlenet",
    "tiny_yolov2",
    "branchy_alexnet",
    "mlp",
)


def fit_host(
    per_kind: int = 24,
    seed: int = 0,
    models: Sequence[str] = CHECK_MODELS,
    on_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Sweep, fit, hold out, and check whole models; returns the JSON-ready record.

    Every layer is timed twice: warm (weights and code hot) for its fixed per-op cost, and with
    the caches flushed for how its time grows with size. Alone, either misleads: warm timings
    miss the cost of streaming cold weights (AlexNet's FC layers), flushed ones inflate the
    fixed cost of the small ops (MobileNetV2's many BN/ReLU6 layers)."""
    layers = synthetic_layers(per_kind, seed)
    warm = measure(layers, flush_bytes=0, on_step=on_step)
    samples = measure(layers, on_step=on_step)
    rng = random.Random(seed + 1)
    held_out = set(rng.sample(range(len(samples)), len(samples) // 4))
    train = [s for i, s in enumerate(samples) if i not in held_out]
    test = [s for i, s in enumerate(samples) if i in held_out]
    fitted: dict[str, Any] = {}
    layer_models: dict[str, LayerModel] = {}
    for kind in FEATURES:
        kind_train = [s for s in train if s.kind == kind]
        if len(kind_train) < len(FEATURES[kind]) + 1:
            continue
        warm_kind = [w for w in warm if w.kind == kind]
        model = fit_kind(kind, kind_train, fixed_cost(warm_kind))
        layer_models[kind] = model
        fitted[kind] = {
            "features": list(model.features),
            "weights": list(model.weights),
            "intercept": model.intercept,
            "train_samples": len(kind_train),
            "train_mape": mape(model, kind_train),
            "test_samples": sum(s.kind == kind for s in test),
            "test_mape": mape(model, [s for s in test if s.kind == kind]),
        }
    device = RegressionDevice("host-fit", layer_models)
    whole = []
    in_place: dict[str, list[float]] = {}
    for name in models:
        net, inputs = zoo.create(name), zoo.example_inputs(name)
        part = partition(net, inputs)
        predicted = compute_seconds(device, part.ops)
        measured = median_seconds(_call(net, inputs), repeats=7)
        whole.append(
            {
                "model": name,
                "predicted_s": predicted,
                "measured_s": measured,
                "error": abs(predicted - measured) / measured,
            }
        )
        # Per-layer error where it matters: the zoo's own layers, timed inside their model.
        op_times = profile_ops(part, inputs, repeats=5)
        for op in part.ops:
            kind = regression_kind(op)
            if kind in layer_models and op_times[op.name] > 0:
                err = abs(device.op_seconds(op) - op_times[op.name]) / op_times[op.name]
                in_place.setdefault(kind, []).append(err)
        if on_step is not None:
            on_step()
    for kind, errors in in_place.items():
        fitted[kind]["zoo_layers"] = len(errors)
        fitted[kind]["zoo_mape"] = float(np.mean(errors))
    return {
        "device": "host-fit",
        "machine": platform.machine(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "models": fitted,
        "whole_model": whole,
        "whole_model_mape": float(np.mean([w["error"] for w in whole])),
        "measurements": [
            {"kind": s.kind, "seconds": s.seconds, **s.features, "held_out": i in held_out}
            for i, s in enumerate(samples)
        ],
        "warm_measurements": [{"kind": s.kind, "seconds": s.seconds, **s.features} for s in warm],
    }


def _call(net: nn.Module, inputs: Sequence[Tensor]) -> Callable[[], Any]:
    return lambda: net(*inputs)


def load_fit(path: Path) -> RegressionDevice:
    """A device class from a fit saved by ``coinfer profile``."""
    try:
        record = json.loads(Path(path).read_text())
        models = {
            kind: LayerModel(tuple(m["features"]), tuple(m["weights"]), m["intercept"])
            for kind, m in record["models"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadValueError(
            f"{path} is not a fit saved by coinfer profile ({type(exc).__name__}: {exc})"
        ) from None
    return RegressionDevice(str(record.get("device", "host-fit")), models, source=str(path))
