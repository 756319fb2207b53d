"""ResNet-9, the residual network of the CIFAR-10 speed records (Page, *How to train your ResNet*,
2018, the DAWNBench winner): a conv-BN-ReLU "prep" layer, three stages that widen and max-pool, two of
them followed by a residual pair of conv-BN-ReLU layers, global max pooling and a bias-free
classifier whose logits are scaled by 1/8. 6.57M parameters; trained by the `speedrun` recipe."""

from __future__ import annotations

import torch
from torch import nn

from .base import ClassifierHead
from .blocks import DropPath, GlobalPool, drop_path_rates
from .registry import register


class ConvBN(nn.Sequential):
    """3×3 conv (no bias), BN, ReLU."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)


class ResidualPair(nn.Module):
    """y = x + F(x), F two ConvBN layers of the same width (no ReLU after the addition, as Page's);
    `drop_path`, F's stochastic-depth rate."""

    def __init__(self, planes: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.res1 = ConvBN(planes, planes)
        self.res2 = ConvBN(planes, planes)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.res2(self.res1(x)))


class ResNet9(ClassifierHead):
    """`prep`, `layer1` (2w, pool, residual pair), `layer2` (4w, pool), `layer3` (8w, pool, residual
    pair), global max pooling, `fc` without bias, logits × `logit_scale`. Convolutions and the
    classifier keep PyTorch's default initialization, as in Page's code. `drop_path_rate`:
    stochastic depth of the two residual pairs (`drop_path_rates`: 0 and the rate)."""

    num_stages = 3

    def __init__(
        self,
        *,
        num_classes: int,
        width: int = 64,
        logit_scale: float = 0.125,
        in_channels: int = 3,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if width < 1 or logit_scale <= 0:
            raise ValueError(f"width must be ≥ 1 and logit_scale > 0, got {width} and {logit_scale}")
        first, second = drop_path_rates(drop_path_rate, 2)
        self.prep = ConvBN(in_channels, width)
        self.layer1 = nn.Sequential(ConvBN(width, 2 * width), nn.MaxPool2d(2), ResidualPair(2 * width, first))
        self.layer2 = nn.Sequential(ConvBN(2 * width, 4 * width), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(ConvBN(4 * width, 8 * width), nn.MaxPool2d(2), ResidualPair(8 * width, second))
        self.pool = GlobalPool(max=True)
        self.num_features = 8 * width
        self.fc = nn.Linear(self.num_features, num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features (N, num_features)."""
        return torch.flatten(self.pool(self.layer3(self.layer2(self.layer1(self.prep(x))))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.logit_scale


register(
    "resnet9",
    ResNet9,
    family="speed",
    depth=9,
    input_size=32,
    num_classes=10,
    description="ResNet-9 of the CIFAR-10 speed records (Page 2018): 8 convs + fc, two residual pairs",
)
