"""A GoogLeNet-style network (Szegedy et al., CVPR 2015): Inception v1 blocks of four parallel
branches (1x1, 1x1->3x3, 1x1->5x5, pool->1x1) joined by channel concatenation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from coinfer.zoo.blocks import ConvAct
from coinfer.zoo.registry import register

# in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (Table 1 of the paper).
_INCEPTION = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class Inception(nn.Module):
    def __init__(
        self, in_ch: int, c1: int, r3: int, c3: int, r5: int, c5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = ConvAct(in_ch, c1, 1)
        self.branch3 = nn.Sequential(ConvAct(in_ch, r3, 1), ConvAct(r3, c3, 3))
        self.branch5 = nn.Sequential(ConvAct(in_ch, r5, 1), ConvAct(r5, c5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvAct(in_ch, pool_proj, 1))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return torch.cat(branches, 1)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = ConvAct(3, 64, 7, stride=2)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.conv2 = ConvAct(64, 64, 1)
        self.conv3 = ConvAct(64, 192, 3)
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(*_INCEPTION["inception3a"])
        self.inception3b = Inception(*_INCEPTION["inception3b"])
        self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(*_INCEPTION["inception4a"])
        self.inception4b = Inception(*_INCEPTION["inception4b"])
        self.inception4c = Inception(*_INCEPTION["inception4c"])
        self.inception4d = Inception(*_INCEPTION["inception4d"])
        self.inception4e = Inception(*_INCEPTION["inception4e"])
        self.pool4 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception5a = Inception(*_INCEPTION["inception5a"])
        self.inception5b = Inception(*_INCEPTION["inception5b"])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.norm2(self.conv3(self.conv2(self.norm1(x)))))
        x = self.pool3(self.inception3b(self.inception3a(x)))
        for block in (self.inception4a, self.inception4b, self.inception4c, self.inception4d):
            x = block(x)
        x = self.pool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return self.fc(self.dropout(self.flatten(self.avgpool(x))))


@register(
    "googlenet",
    summary="GoogLeNet-style network of Inception v1 blocks, 224x224",
    source="Szegedy et al., CVPR 2015",
)
def googlenet(num_classes: int = 1000) -> nn.Module:
    return GoogLeNet(num_classes)
