"""Device classes: how long each op takes on a device, by measurement or by regression.

A device is a latency model: ``op_seconds(op)``. ``host`` is this machine measured op by op;
``host/10`` is the host ten times slower; ``rpi3`` and ``edge-pc`` are the regression models
Edgent published (Li, Zhou, Chen, MECOMM 2018, Table 2) for a Raspberry Pi 3 and a desktop PC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from coinfer.errors import BadValueError
from coinfer.graph.types import Op
from coinfer.latency.layers import layer_features, regression_kind


class DeviceModel(Protocol):
    @property
    def name(self) -> str: ...

    def op_seconds(self, op: Op) -> float:
        """Predicted (or measured) seconds for one op on this device."""
        ...


def compute_seconds(device: DeviceModel, ops: Iterable[Op]) -> float:
    return sum(device.op_seconds(op) for op in ops)


@dataclass(frozen=True)
class LayerModel:
    """seconds = intercept + Σ weight·feature, floored at zero."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float

    def predict(self, values: Mapping[str, float]) -> float:
        total = self.intercept + sum(
            w * values.get(f, 0.0) for f, w in zip(self.features, self.weights, strict=True)
        )
        return max(0.0, total)


# Kinds a regression table may lack, and the kind whose model stands in for them.
STAND_INS: dict[str, str] = {
    "norm": "act",
    "elementwise": "act",
    "reduce": "pool",
    "matmul": "fc",
    "other": "act",
    "conv_dw": "conv",
}
ZERO_COST_KINDS = frozenset({"reshape"})


@dataclass(frozen=True)
class RegressionDevice:
    """One linear model per layer kind; kinds without a model use their stand-in's model."""

    name: str
    models: Mapping[str, LayerModel]
    load: LayerModel | None = None
    source: str = ""

    def op_seconds(self, op: Op) -> float:
        if op.kind in ZERO_COST_KINDS:
            return 0.0
        kind = regression_kind(op)
        model = self.models.get(kind) or self.models.get(STAND_INS.get(kind, ""))
        if model is None:
            return 0.0
        return model.predict(layer_features(op))

    def load_seconds(self, param_bytes: int) -> float:
        """Time to load a model of ``param_bytes`` (0 when the table has no loading model)."""
        return self.load.predict({"bytes": float(param_bytes)}) if self.load else 0.0


@dataclass(frozen=True)
class MeasuredDevice:
    """Per-op times measured for one partitioned model (keyed by op name)."""

    name: str
    seconds: Mapping[str, float]

    def op_seconds(self, op: Op) -> float:
        try:
            return self.seconds[op.name]
        except KeyError:
            raise KeyError(
                f"device {self.name!r} has no measurement for op {op.name!r}: it was profiled on "
                f"another model; profile this one (coinfer.latency.profile_ops)"
            ) from None


@dataclass(frozen=True)
class ScaledDevice:
    """A device ``factor`` times slower than ``base`` (``host/10``; ``edge-pc*10`` has factor
    0.1). Model loading, where the base has a model of it, scales the same way."""

    base: DeviceModel
    factor: float
    name: str = field(default="")

    def op_seconds(self, op: Op) -> float:
        return self.factor * self.base.op_seconds(op)

    def load_seconds(self, param_bytes: int) -> float:
        loader = getattr(self.base, "load_seconds", None)
        return self.factor * float(loader(param_bytes)) if loader is not None else 0.0


def _ms(features: tuple[str, ...], weights: tuple[float, ...], intercept: float) -> LayerModel:
    return LayerModel(features, tuple(w / 1e3 for w in weights), intercept / 1e3)


_EDGENT_SOURCE = "Li, Zhou, Chen, Edge Intelligence (Edgent), MECOMM 2018, Table 2"

# Edgent Table 2, in ms: x1/x2 as the paper defines them (see layer_features).
EDGE_PC = RegressionDevice(
    "edge-pc",
    {
        "conv": _ms(("in_elements", "kernel_filters"), (6.03e-5, 1.24e-4), 0.189),
        "act": _ms(("in_elements",), (5.6e-6,), 5.69e-2),
        "pool": _ms(("in_elements", "out_elements"), (1.63e-5, 4.07e-6), 0.211),
        "lrn": _ms(("in_elements",), (6.59e-5,), 7.80e-2),
        "dropout": _ms(("in_elements",), (5.23e-6,), 4.64e-3),
        "fc": _ms(("in_elements", "out_elements"), (1.07e-4, -1.83e-4), 0.164),
    },
    load=_ms(("bytes",), (1.33e-6,), 2.182),
    source=_EDGENT_SOURCE + " (desktop PC)",
)
RPI3 = RegressionDevice(
    "rpi3",
    {
        "conv": _ms(("in_elements", "kernel_filters"), (6.13e-3, 2.67e-2), -9.909),
        "act": _ms(("in_elements",), (1.5e-5,), 4.88e-1),
        "pool": _ms(("in_elements", "out_elements"), (1.33e-4, 3.31e-5), 1.657),
        "lrn": _ms(("in_elements",), (5.19e-4,), 5.89e-1),
        "dropout": _ms(("in_elements",), (2.34e-6,), 0.0525),
        "fc": _ms(("in_elements", "out_elements"), (9.18e-4, 3.99e-3), 1.169),
    },
    load=_ms(("bytes",), (4.49e-6,), 842.136),
    source=_EDGENT_SOURCE + " (Raspberry Pi 3)",
)
PUBLISHED: dict[str, RegressionDevice] = {d.name: d for d in (RPI3, EDGE_PC)}

HostProfiler = Callable[[], Mapping[str, float]]


def device_names() -> list[str]:
    scaling = "any of these /N (N times slower, e.g. host/10) or *N (N times faster, edge-pc*10)"
    return ["host", *PUBLISHED, "fit:FILE (from coinfer profile)", scaling]


def resolve_device(spec: str, host_profile: HostProfiler | None = None) -> DeviceModel:
    """A device class by name: ``rpi3``, ``edge-pc``, ``host`` or ``fit:FILE``, optionally
    scaled: ``/N`` for N times slower (``host/10``), ``*N`` for N times faster (``edge-pc*10``).

    ``host`` needs ``host_profile``, which measures the model's ops on this machine.
    """
    scaled = re.fullmatch(r"(.+?)([/*])([0-9]*\.?[0-9]+)", spec)
    if scaled is not None and spec.startswith("fit:") and Path(spec[4:]).is_file():
        scaled = None  # a fit file whose name ends like a scale
    if scaled is not None:
        factor = float(scaled.group(3))
        if not factor > 0:
            raise BadValueError(f"the scale in {spec!r} must be positive")
        base = resolve_device(scaled.group(1), host_profile)
        return ScaledDevice(base, factor if scaled.group(2) == "/" else 1.0 / factor, spec)
    if spec in PUBLISHED:
        return PUBLISHED[spec]
    if spec.startswith("fit:"):
        from coinfer.latency.regression import load_fit

        path = Path(spec[4:])
        if not path.is_file():
            raise BadValueError(
                f"device class {spec!r}: no fit file {str(path)!r} (make one with "
                f"coinfer profile --out FILE, then --device fit:FILE)"
            )
        return load_fit(path)
    if spec != "host":
        known = "; ".join(device_names())
        raise BadValueError(f"unknown device class {spec!r}: choose from {known}")
    if host_profile is None:
        raise BadValueError(f"device {spec!r} is measured on this host: give a model to profile")
    return MeasuredDevice("host", host_profile())
