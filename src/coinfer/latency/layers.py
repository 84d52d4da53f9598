"""The numbers a per-layer latency model reads off one op."""

from __future__ import annotations

import math

from coinfer.graph.types import Op


def layer_features(op: Op) -> dict[str, float]:
    """Size features of one op: elements in and out, MACs, parameters, Edgent's conv variable
    (kernel/stride)² · filters, and MACs of depthwise convolutions (memory-bound, so they get a
    slope of their own)."""
    attrs = op.attrs
    first_input = math.prod(op.input_shapes[0]) if op.input_shapes else 0
    kernel_filters = 0.0
    depthwise_macs = 0.0
    if op.kind == "conv" and "kernel_size" in attrs:
        kernel = attrs["kernel_size"]
        stride = attrs.get("stride", (1,) * len(kernel))
        ratio = math.prod(k / s for k, s in zip(kernel, stride, strict=False))
        kernel_filters = ratio * attrs.get("out_channels", 0)
        groups = attrs.get("groups", 1)
        if groups > 1 and groups == attrs.get("in_channels"):
            depthwise_macs = float(op.macs)
    return {
        "in_elements": float(first_input),
        "out_elements": float(op.output_elements),
        "macs": float(op.macs - depthwise_macs),
        "depthwise_macs": depthwise_macs,
        "kernel_filters": kernel_filters,
    }


def regression_kind(op: Op) -> str:
    """The kind a latency regression groups an op under: depthwise convolutions are
    memory-bound and scale nothing like dense ones, so they get a model of their own."""
    if op.kind == "conv" and layer_features(op)["depthwise_macs"] > 0:
        return "conv_dw"
    return op.kind
