"""BranchyNet AlexNet with five exits, the early-exit model of Edgent.

Edgent (Li, Zhou, Chen, MECOMM 2018) co-infers a BranchyNet (Teerapittayanon et al., ICPR 2016)
version of AlexNet on 32x32 CIFAR-10-size images with five exit points. The trunk is AlexNet
sized for 32x32 inputs; exits 1-4 are small side branches (conv, ReLU, pool, FC) after the first
four conv stages, exit 5 is the trunk's own classifier. Running to exit e computes only the trunk
up to e's branch point and that branch: nothing deeper runs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from coinfer.errors import BadModelError
from coinfer.zoo.registry import register

_CHANNELS = (64, 192, 384, 256, 256)
_BRANCH_CHANNELS = 32
# Spatial side after each stage for a 32x32 input: pool1 -> 15, pool2 -> 7, then 7, 7.
_BRANCH_SIDES = (15, 7, 7, 7)


def _pooled(side: int) -> int:
    return (side - 3) // 2 + 1


class BranchyAlexNet(nn.Module):
    """``forward`` runs to the last exit; ``forward_to(x, e)`` stops at exit e;
    ``forward_exits`` returns every exit's logits (for joint training); ``exit_model(e)`` is a
    plain chain sharing these weights, for partitioning one exit's path."""

    num_exits = 5

    def __init__(self, num_classes: int = 10, width: float = 1.0, fc_width: int = 1024) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = (max(8, round(c * width)) for c in _CHANNELS)
        self.num_classes = num_classes
        stages: list[OrderedDict[str, nn.Module]] = [
            OrderedDict(
                conv1=nn.Conv2d(3, c1, 5, padding=2),
                relu1=nn.ReLU(inplace=True),
                pool1=nn.MaxPool2d(3, 2),
                norm1=nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
            ),
            OrderedDict(
                conv2=nn.Conv2d(c1, c2, 5, padding=2),
                relu2=nn.ReLU(inplace=True),
                pool2=nn.MaxPool2d(3, 2),
                norm2=nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
            ),
            OrderedDict(conv3=nn.Conv2d(c2, c3, 3, padding=1), relu3=nn.ReLU(inplace=True)),
            OrderedDict(conv4=nn.Conv2d(c3, c4, 3, padding=1), relu4=nn.ReLU(inplace=True)),
            OrderedDict(
                conv5=nn.Conv2d(c4, c5, 3, padding=1),
                relu5=nn.ReLU(inplace=True),
                pool5=nn.MaxPool2d(3, 2),
                flatten=nn.Flatten(),
                fc6=nn.Linear(c5 * 3 * 3, fc_width),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(0.5),
                fc7=nn.Linear(fc_width, fc_width),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(0.5),
                fc8=nn.Linear(fc_width, num_classes),
            ),
        ]
        self.stages = nn.ModuleList(nn.Sequential(s) for s in stages)
        self.branches = nn.ModuleList(
            self._branch(channels, side, num_classes)
            for channels, side in zip((c1, c2, c3, c4), _BRANCH_SIDES, strict=True)
        )

    @staticmethod
    def _branch(channels: int, side: int, num_classes: int) -> nn.Sequential:
        pooled = _pooled(side)
        return nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(channels, _BRANCH_CHANNELS, 3, padding=1),
                relu=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, 2),
                flatten=nn.Flatten(),
                fc=nn.Linear(_BRANCH_CHANNELS * pooled * pooled, num_classes),
            )
        )

    def _check_exit(self, exit: int) -> None:
        if not isinstance(exit, int) or not 1 <= exit <= self.num_exits:
            raise BadModelError(
                f"exit must be 1..{self.num_exits} (5 = the main exit), got {exit!r}"
            )

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_to(self, x: Tensor, exit: int) -> Tensor:
        """Logits of exit ``exit`` (1..5); layers past that exit are never run."""
        self._check_exit(exit)
        for stage in self.stages[:exit]:
            x = stage(x)
        return x if exit == self.num_exits else self.branches[exit - 1](x)

    def forward_exits(self, x: Tensor) -> list[Tensor]:
        """Every exit's logits from one pass of the trunk, shallowest first."""
        outputs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            outputs.append(self.branches[i](x) if i < len(self.branches) else x)
        return outputs

    def forward_entropy(self, x: Tensor, thresholds: Sequence[float]) -> tuple[Tensor, Tensor]:
        """BranchyNet's exiting: a sample leaves at the first exit whose softmax entropy is below
        that exit's threshold (the last exit takes everyone left). Samples that have left are not
        computed any further. Returns the logits each sample left with and its exit (1..5)."""
        if len(thresholds) != self.num_exits - 1:
            raise BadModelError(
                f"give {self.num_exits - 1} entropy thresholds (exits 1..4), got {len(thresholds)}"
            )
        logits = x.new_empty((x.shape[0], self.num_classes))
        exits = torch.full((x.shape[0],), self.num_exits, dtype=torch.long)
        alive = torch.arange(x.shape[0])
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.num_exits - 1:
                logits[alive] = x
                break
            out = self.branches[i](x)
            entropy = -(out.softmax(1) * out.log_softmax(1)).sum(1)
            leave = entropy < thresholds[i]
            logits[alive[leave]] = out[leave]
            exits[alive[leave]] = i + 1
            alive, x = alive[~leave], x[~leave]
            if alive.numel() == 0:
                break
        return logits, exits

    def exit_model(self, exit: int) -> nn.Sequential:
        """The chain that computes exit ``exit`` alone, sharing this model's weights."""
        self._check_exit(exit)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for stage in self.stages[:exit]:
            layers.update(stage.named_children())
        if exit < self.num_exits:
            for name, module in self.branches[exit - 1].named_children():
                layers[f"exit{exit}_{name}"] = module
        return nn.Sequential(layers).train(self.training)


@register(
    "branchy_alexnet",
    summary="BranchyNet AlexNet, 32x32, 10 classes, 5 exits (Edgent)",
    source="Li, Zhou, Chen, MECOMM 2018; Teerapittayanon et al., ICPR 2016",
    inputs=((1, 3, 32, 32),),
)
def branchy_alexnet(
    num_classes: int = 10, width: float = 1.0, fc_width: int = 1024, pretrained: bool = False
) -> nn.Module:
    """``pretrained=True`` loads the weights trained on digits that ship with coinfer (their
    own width, 0.5, and FC width, 512; see coinfer.zoo.training)."""
    if pretrained:
        from coinfer.zoo.training import load_trained

        return load_trained()[0]
    return BranchyAlexNet(num_classes, width, fc_width)


def _shipped_exit_accuracy() -> list[float]:
    """Held-out accuracy of each exit of the weights that ship (``pretrained=True``)."""
    from coinfer.zoo.training import load_trained

    return [float(a) for a in load_trained()[1]["exit_accuracy"]]


branchy_alexnet.exit_accuracy = _shipped_exit_accuracy  # type: ignore[attr-defined]
