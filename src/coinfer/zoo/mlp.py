"""An MLP of N equal-width fully connected layers: the chain DNN whose optimal placement has a
closed form in Yan, Bi, Zhang (IEEE TWC 2022)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from coinfer.errors import BadModelError
from coinfer.zoo.blocks import FCAct
from coinfer.zoo.registry import register


class MLP(nn.Sequential):
    def __init__(self, depth: int = 8, width: int = 1024) -> None:
        if depth < 1 or width < 1:
            raise BadModelError(f"an MLP needs depth >= 1 and width >= 1, got {depth=}, {width=}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i in range(1, depth):
            layers[f"fc{i}"] = FCAct(width, width)
        layers[f"fc{depth}"] = nn.Linear(width, width)
        super().__init__(layers)


@register(
    "mlp",
    summary="MLP of N equal-width FC layers (depth=8, width=1024)",
    source="Yan, Bi, Zhang, IEEE TWC 2022",
    inputs=lambda width=1024, **_: ((1, width),),
)
def mlp(depth: int = 8, width: int = 1024) -> nn.Module:
    return MLP(depth, width)
