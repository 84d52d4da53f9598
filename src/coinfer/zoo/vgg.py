"""VGG16 (Simonyan & Zisserman, ICLR 2015, configuration D).

Layers are counted as ANS does (Zhang, Chen, Xu, WWW 2021): a conv+ReLU unit is one layer, so
13 conv + 5 pool + flatten + 3 FC = 22 layers give the 23 partition points (actions) of ANS.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from coinfer.zoo.blocks import ConvAct, FCAct
from coinfer.zoo.registry import register

_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG16(nn.Sequential):
    def __init__(self, num_classes: int = 1000, image_size: int = 224) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        for b, widths in enumerate(_BLOCKS, start=1):
            for i, width in enumerate(widths, start=1):
                layers[f"conv{b}_{i}"] = ConvAct(channels, width, 3)
                channels = width
            layers[f"pool{b}"] = nn.MaxPool2d(2, 2)
        side = image_size // 32
        layers["flatten"] = nn.Flatten()
        layers["fc6"] = FCAct(512 * side * side, 4096, dropout=0.5)
        layers["fc7"] = FCAct(4096, 4096, dropout=0.5)
        layers["fc8"] = nn.Linear(4096, num_classes)
        super().__init__(layers)


@register(
    "vgg16",
    summary="VGG16, 224x224, 23 layer cuts as in ANS",
    source="Simonyan & Zisserman, ICLR 2015",
    inputs=lambda image_size=224, **_: ((1, 3, image_size, image_size),),
)
def vgg16(num_classes: int = 1000, image_size: int = 224) -> nn.Module:
    return VGG16(num_classes, image_size)
