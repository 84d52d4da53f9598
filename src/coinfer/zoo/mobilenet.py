"""MobileNetV2 (Sandler et al., CVPR 2018): inverted residual blocks with linear bottlenecks."""

from __future__ import annotations

from torch import Tensor, nn

from coinfer.zoo.blocks import ConvAct
from coinfer.zoo.registry import register

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvAct(in_ch, hidden, 1, batch_norm=True, act=nn.ReLU6(inplace=True)))
        layers += [
            ConvAct(
                hidden,
                hidden,
                3,
                stride,
                groups=hidden,
                batch_norm=True,
                act=nn.ReLU6(inplace=True),
            ),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            ConvAct(3, 32, 3, stride=2, batch_norm=True, act=nn.ReLU6(inplace=True))
        ]
        in_ch = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        layers.append(ConvAct(in_ch, 1280, 1, batch_norm=True, act=nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


@register("mobilenet_v2", summary="MobileNetV2, 224x224", source="Sandler et al., CVPR 2018")
def mobilenet_v2(num_classes: int = 1000) -> nn.Module:
    return MobileNetV2(num_classes)
