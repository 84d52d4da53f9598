"""What each traced node computes: its kind and its multiply-accumulates (MACs).

Counts follow the usual conventions: a convolution costs out_elements · (C_in/groups) · k_h·k_w,
a fully connected layer out_elements · in_features, a matmul out_elements · inner_dim, pooling
out_elements · kernel_area, and activations, normalisations and elementwise ops one MAC per
output element. Pure data movement (view, cat, flatten, getitem) costs nothing.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass(frozen=True)
class OpCost:
    kind: str
    macs: int = 0
    attrs: Mapping[str, Any] = field(default_factory=dict)


def _numel(value: Any) -> int:
    return value.numel() if isinstance(value, Tensor) else 0


def _first_tensor(args: Sequence[Any]) -> Tensor | None:
    return next((a for a in args if isinstance(a, Tensor)), None)


def _kernel(v: Any, op_name: str) -> tuple[int, ...]:
    """A kernel size as a tuple; an int means the same size in every spatial dimension, whose
    number the op's name tells (max_pool2d, AvgPool3d, ...)."""
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v)
    match = re.search(r"(\d)d$", op_name)
    return (int(v),) * (int(match.group(1)) if match else 1)


# ---------------------------------------------------------------- modules


def _conv_module(m: nn.Module, args: Sequence[Any], out: Any) -> OpCost:
    assert isinstance(m, nn.modules.conv._ConvNd)
    kernel = math.prod(m.kernel_size)
    if m.transposed:
        macs = _numel(args[0]) * (m.out_channels // m.groups) * kernel
    else:
        macs = _numel(out) * (m.in_channels // m.groups) * kernel
    attrs = {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": tuple(m.kernel_size),
        "stride": tuple(m.stride),
        "padding": m.padding if isinstance(m.padding, str) else tuple(m.padding),
        "groups": m.groups,
    }
    return OpCost("conv", macs, attrs)


def _linear_module(m: nn.Module, args: Sequence[Any], out: Any) -> OpCost:
    assert isinstance(m, nn.Linear)
    attrs = {"in_features": m.in_features, "out_features": m.out_features}
    return OpCost("fc", _numel(out) * m.in_features, attrs)


def _pool_module(m: nn.Module, args: Sequence[Any], out: Any) -> OpCost:
    kernel = getattr(m, "kernel_size", None)
    if kernel is None:  # adaptive pooling reads every input element once
        return OpCost("pool", _numel(args[0]), {"adaptive": True})
    name = type(m).__name__
    size = _kernel(kernel, name)
    attrs = {"kernel_size": size, "stride": _kernel(getattr(m, "stride", None) or kernel, name)}
    return OpCost("pool", _numel(out) * math.prod(size), attrs)


def _lrn_module(m: nn.Module, args: Sequence[Any], out: Any) -> OpCost:
    size = int(getattr(m, "size", 1))
    return OpCost("lrn", _numel(out) * size, {"size": size})


def _per_element(kind: str) -> Callable[[nn.Module, Sequence[Any], Any], OpCost]:
    def rule(m: nn.Module, args: Sequence[Any], out: Any) -> OpCost:
        return OpCost(kind, _numel(out))

    return rule


def _free(kind: str) -> Callable[..., OpCost]:
    def rule(*_: Any) -> OpCost:
        return OpCost(kind, 0)

    return rule


_MODULE_RULES: list[tuple[tuple[type, ...], Callable[[nn.Module, Sequence[Any], Any], OpCost]]] = [
    ((nn.modules.conv._ConvNd,), _conv_module),
    ((nn.Linear,), _linear_module),
    ((nn.LocalResponseNorm, nn.CrossMapLRN2d), _lrn_module),
    (
        (
            nn.modules.pooling._MaxPoolNd,
            nn.modules.pooling._AvgPoolNd,
            nn.modules.pooling._AdaptiveAvgPoolNd,
            nn.modules.pooling._AdaptiveMaxPoolNd,
            nn.modules.pooling._LPPoolNd,
        ),
        _pool_module,
    ),
    (
        (
            nn.modules.batchnorm._NormBase,
            nn.LayerNorm,
            nn.GroupNorm,
            nn.RMSNorm,
        ),
        _per_element("norm"),
    ),
    ((nn.modules.dropout._DropoutNd,), _free("dropout")),
    (
        (nn.Flatten, nn.Unflatten, nn.Identity, nn.ChannelShuffle, nn.PixelShuffle),
        _free("reshape"),
    ),
    ((nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd), _free("reshape")),
    ((nn.Upsample,), _per_element("other")),
]

_ACTIVATION_MODULE = "torch.nn.modules.activation"


def module_cost(m: nn.Module, args: Sequence[Any], out: Any) -> OpCost | None:
    """Cost of a leaf module call, or None for a module type these rules do not know."""
    for types, rule in _MODULE_RULES:
        if isinstance(m, types):
            return rule(m, args, out)
    if type(m).__module__ == _ACTIVATION_MODULE and not isinstance(m, nn.MultiheadAttention):
        return OpCost("act", _numel(out))
    return None


# ------------------------------------------------------- functions and methods

FunctionRule = Callable[[Sequence[Any], Mapping[str, Any], Any], OpCost]


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], pos: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[pos] if len(args) > pos else None


def _conv_fn(transposed: bool) -> FunctionRule:
    def rule(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
        weight = _arg(args, kwargs, 1, "weight")
        per_output = weight.shape[1] * math.prod(weight.shape[2:])
        macs = _numel(args[0]) * per_output if transposed else _numel(out) * per_output
        attrs = {"kernel_size": tuple(weight.shape[2:]), "out_channels": weight.shape[0]}
        return OpCost("conv", macs, attrs)

    return rule


def _linear_fn(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
    weight = _arg(args, kwargs, 1, "weight")
    in_features = weight.shape[-1]
    attrs = {"in_features": in_features, "out_features": weight.shape[0]}
    return OpCost("fc", _numel(out) * in_features, attrs)


def _matmul_fn(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
    tensors = [a for a in args if isinstance(a, Tensor)]
    if len(tensors) < 2:
        return OpCost("matmul", 0)
    a = tensors[-2]  # addmm(bias, a, b) and matmul(a, b) alike
    return OpCost("matmul", _numel(out) * (a.shape[-1] if a.dim() else 1))


def _pool_fn(name: str) -> FunctionRule:
    def rule(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
        kernel = _arg(args, kwargs, 1, "kernel_size")
        size = _kernel(kernel, name)
        stride = _kernel(_arg(args, kwargs, 2, "stride") or kernel, name)
        return OpCost(
            "pool", _numel(out) * math.prod(size), {"kernel_size": size, "stride": stride}
        )

    return rule


def _adaptive_pool_fn(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
    return OpCost("pool", _numel(args[0]), {"adaptive": True})


def _elements(kind: str) -> FunctionRule:
    def rule(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
        return OpCost(kind, _numel(out))

    return rule


def _reduce_fn(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
    first = _first_tensor(args)
    return OpCost("reduce", _numel(first))


def _nothing(kind: str) -> FunctionRule:
    def rule(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
        return OpCost(kind, 0)

    return rule


# fmt: off
_ACT_NAMES = (
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "gelu",
    "silu", "mish", "hardswish", "hardsigmoid", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_",
    "tanh", "tanh_", "softmax", "log_softmax", "softplus", "prelu", "logsigmoid",
)
_ELEMENTWISE_NAMES = (
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide", "neg", "exp", "log",
    "sqrt", "rsqrt", "pow", "clamp", "clamp_", "abs", "maximum", "minimum", "where", "addcmul",
)
_REDUCE_NAMES = ("mean", "sum", "amax", "amin", "max", "min", "logsumexp", "norm", "var", "std")
_RESHAPE_NAMES = (
    "view", "reshape", "flatten", "unflatten", "permute", "transpose", "contiguous", "squeeze",
    "unsqueeze", "expand", "expand_as", "repeat", "cat", "concat", "concatenate", "stack", "chunk",
    "split", "narrow", "select", "index_select", "size", "dim", "type", "to", "float", "half",
    "double", "int", "long", "detach", "clone", "pad", "flip", "roll",
)
_DROPOUT_NAMES = (
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
)
_NORM_NAMES = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "normalize")
# fmt: on

_BY_NAME: dict[str, FunctionRule] = {}
for _n in _ACT_NAMES:
    _BY_NAME[_n] = _elements("act")
for _n in _ELEMENTWISE_NAMES:
    _BY_NAME[_n] = _elements("elementwise")
for _n in _REDUCE_NAMES:
    _BY_NAME[_n] = _reduce_fn
for _n in _RESHAPE_NAMES:
    _BY_NAME[_n] = _nothing("reshape")
for _n in _DROPOUT_NAMES:
    _BY_NAME[_n] = _nothing("dropout")
for _n in _NORM_NAMES:
    _BY_NAME[_n] = _elements("norm")
_BY_NAME.update(
    {
        "conv1d": _conv_fn(False),
        "conv2d": _conv_fn(False),
        "conv3d": _conv_fn(False),
        "conv_transpose1d": _conv_fn(True),
        "conv_transpose2d": _conv_fn(True),
        "conv_transpose3d": _conv_fn(True),
        "linear": _linear_fn,
        "matmul": _matmul_fn,
        "mm": _matmul_fn,
        "bmm": _matmul_fn,
        "addmm": _matmul_fn,
        "baddbmm": _matmul_fn,
        "max_pool1d": _pool_fn("max_pool1d"),
        "max_pool2d": _pool_fn("max_pool2d"),
        "max_pool3d": _pool_fn("max_pool3d"),
        "avg_pool1d": _pool_fn("avg_pool1d"),
        "avg_pool2d": _pool_fn("avg_pool2d"),
        "avg_pool3d": _pool_fn("avg_pool3d"),
        "adaptive_avg_pool1d": _adaptive_pool_fn,
        "adaptive_avg_pool2d": _adaptive_pool_fn,
        "adaptive_avg_pool3d": _adaptive_pool_fn,
        "adaptive_max_pool1d": _adaptive_pool_fn,
        "adaptive_max_pool2d": _adaptive_pool_fn,
        "adaptive_max_pool3d": _adaptive_pool_fn,
        "local_response_norm": _elements("lrn"),
        "interpolate": _elements("other"),
        "getitem": _nothing("reshape"),
        "getattr": _nothing("reshape"),
    }
)

_OPERATORS: dict[Any, str] = {
    operator.add: "add",
    operator.iadd: "add",
    operator.sub: "sub",
    operator.isub: "sub",
    operator.mul: "mul",
    operator.imul: "mul",
    operator.truediv: "div",
    operator.itruediv: "div",
    operator.neg: "neg",
    operator.pow: "pow",
    operator.matmul: "matmul",
    operator.getitem: "getitem",
    getattr: "getattr",
}


def function_name(target: Any) -> str:
    """The name a call_function target goes by: ``F.relu`` -> relu, ``operator.add`` -> add."""
    if target in _OPERATORS:
        return _OPERATORS[target]
    return str(getattr(target, "__name__", None) or target)


def function_cost(name: str, args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCost:
    """Cost of a call_function or call_method node, by the function or method name."""
    rule = _BY_NAME.get(name)
    if rule is None:
        return OpCost("other", 0)
    return rule(args, kwargs, out)
