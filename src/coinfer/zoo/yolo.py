"""Tiny YOLOv2 for VOC (Redmon & Farhadi, CVPR 2017; the yolov2-tiny-voc configuration).

Nine conv+BN+leaky-ReLU layers with six max-pools on a 416x416 input; the head is a 1x1 conv to
5 anchors x (5 + 20 classes) = 125 channels on a 13x13 grid. ANS partitions this network.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn

from coinfer.zoo.blocks import ConvAct
from coinfer.zoo.registry import register

_WIDTHS = (16, 32, 64, 128, 256, 512)


class MaxPoolSame(nn.Module):
    """Darknet's stride-1 2x2 max-pool: pad right and bottom by one so the size is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.pad(x, (0, 1, 0, 1), mode="replicate"))


class TinyYOLOv2(nn.Sequential):
    def __init__(self, num_anchors: int = 5, num_classes: int = 20) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        for i, width in enumerate(_WIDTHS, start=1):
            layers[f"conv{i}"] = ConvAct(
                channels, width, 3, batch_norm=True, act=nn.LeakyReLU(0.1, inplace=True)
            )
            layers[f"pool{i}"] = nn.MaxPool2d(2, 2) if i < len(_WIDTHS) else MaxPoolSame()
            channels = width
        for i in (7, 8):
            layers[f"conv{i}"] = ConvAct(
                channels, 1024, 3, batch_norm=True, act=nn.LeakyReLU(0.1, inplace=True)
            )
            channels = 1024
        layers["conv9"] = nn.Conv2d(channels, num_anchors * (5 + num_classes), 1)
        super().__init__(layers)


@register(
    "tiny_yolov2",
    summary="Tiny YOLOv2 (VOC), 416x416, 13x13x125 output",
    source="Redmon & Farhadi, CVPR 2017",
    inputs=((1, 3, 416, 416),),
)
def tiny_yolov2(num_anchors: int = 5, num_classes: int = 20) -> nn.Module:
    return TinyYOLOv2(num_anchors, num_classes)
