"""Layer units shared by the zoo. Each is one nn.Module (not a Sequential), so a unit such as
conv+BN+ReLU counts as one layer at ``granularity="layer"``, as the papers count them."""

from __future__ import annotations

from torch import Tensor, nn


class ConvAct(nn.Module):
    """Convolution, optional batch norm, then an activation (ReLU unless given)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        batch_norm: bool = False,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2 if padding is None else padding
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, pad, groups=groups, bias=not batch_norm
        )
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None
        self.act = act if act is not None else nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class FCAct(nn.Module):
    """Fully connected layer, ReLU, and dropout when ``dropout`` > 0."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.fc(x))
        if self.drop is not None:
            x = self.drop(x)
        return x
