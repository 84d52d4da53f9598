"""AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012) with the layers Neurosurgeon profiles.

Every conv, ReLU, LRN, pooling, dropout and FC is its own layer, in the order of the Caffe
reference model that Neurosurgeon (Kang et al., ASPLOS 2017) partitions; conv2, conv4 and conv5
keep the paper's two groups.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from coinfer.zoo.registry import register


class AlexNet(nn.Sequential):
    def __init__(self, num_classes: int = 1000) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            [
                ("conv1", nn.Conv2d(3, 96, 11, stride=4, padding=2)),
                ("relu1", nn.ReLU(inplace=True)),
                ("norm1", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)),
                ("pool1", nn.MaxPool2d(3, 2)),
                ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2)),
                ("relu2", nn.ReLU(inplace=True)),
                ("norm2", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)),
                ("pool2", nn.MaxPool2d(3, 2)),
                ("conv3", nn.Conv2d(256, 384, 3, padding=1)),
                ("relu3", nn.ReLU(inplace=True)),
                ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=2)),
                ("relu4", nn.ReLU(inplace=True)),
                ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=2)),
                ("relu5", nn.ReLU(inplace=True)),
                ("pool5", nn.MaxPool2d(3, 2)),
                ("flatten", nn.Flatten()),
                ("fc6", nn.Linear(256 * 6 * 6, 4096)),
                ("relu6", nn.ReLU(inplace=True)),
                ("drop6", nn.Dropout(0.5)),
                ("fc7", nn.Linear(4096, 4096)),
                ("relu7", nn.ReLU(inplace=True)),
                ("drop7", nn.Dropout(0.5)),
                ("fc8", nn.Linear(4096, num_classes)),
            ]
        )
        super().__init__(layers)


@register(
    "alexnet",
    summary="AlexNet, 224x224, Neurosurgeon's per-layer partition points",
    source="Krizhevsky et al., NIPS 2012; layers as in Kang et al., ASPLOS 2017",
)
def alexnet(num_classes: int = 1000) -> nn.Module:
    return AlexNet(num_classes)
