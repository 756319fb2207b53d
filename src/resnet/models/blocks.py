"""The building blocks of He et al. 2015: the basic block (Fig. 2 left), the bottleneck
(Fig. 5 right) and the three shortcut options of §3.3 (A, B, C); and what later papers add to a
block: average-pool projection shortcuts (ResNet-D, He et al. 2019), squeeze-and-excitation (Hu et
al. 2018) and stochastic depth (Huang et al. 2016).

A block computes y = F(x) + x, where F is the residual branch and x passes through the
shortcut. Attribute names follow torchvision (`conv1`, `bn1`, ..., `downsample`) and timm (`se.fc1`,
`downsample.0` the pooling of ResNet-D) so that checkpoints of the whole ecosystem load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("A", "B", "C")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3×3 convolution with padding 1 and no bias (batch norm follows every conv)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: a parameter-free identity shortcut for increasing dimensions.

    The input is subsampled by `stride` (x[:, :, ::2, ::2]) and (out - in) / 2 zero channels are
    padded on each side, identity channels in the middle: for CIFAR's doubling stages this is the
    `planes // 4` padding of the most widely used PyTorch reproduction.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_planes - self.in_planes
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


def make_shortcut(
    option: str, in_planes: int, out_planes: int, stride: int, *, avg_down: bool = False
) -> nn.Module | None:
    """The shortcut of one block: None for the identity (torchvision's convention), else a module.

    A: identity, zero-padding where dimensions increase. B: identity, 1×1 projection (+BN) where
    the shape changes. C: projection on every shortcut. `avg_down` (B, C; ResNet-D of He et al.
    2019): a projection that strides averages 2×2 windows, then projects at stride 1 (timm's
    `downsample.0/1/2`; `downsample.0` is an Identity where the projection does not stride).
    """
    if option not in SHORTCUTS:
        raise ValueError(f"unknown shortcut option {option!r}; choose one of {', '.join(SHORTCUTS)}")
    if avg_down and option == "A":
        raise ValueError("avg_down pools in front of a projection (shortcut B or C); option A has none")
    shape_changes = stride != 1 or in_planes != out_planes
    if option == "C" or (option == "B" and shape_changes):
        if not avg_down:
            return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))
        # a strided 1×1 reads one input in four; averaging first lets every input reach the sum
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        return nn.Sequential(pool, conv1x1(in_planes, out_planes), nn.BatchNorm2d(out_planes))
    if shape_changes:
        return ZeroPadShortcut(in_planes, out_planes, stride)
    return None


class GlobalPool(nn.Module):
    """The mean (or with `max`, the largest value) of each channel over all positions, N×C×1×1: what
    nn.AdaptiveAvgPool2d(1) and nn.AdaptiveMaxPool2d(1) compute, through mean and amax, whose CUDA
    backward is deterministic (the adaptive pools' is not: deterministic=true would refuse it)."""

    def __init__(self, max: bool = False) -> None:
        super().__init__()
        self.max = max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax((2, 3), keepdim=True) if self.max else x.mean((2, 3), keepdim=True)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018, Fig. 3): every channel scaled by a gate in (0, 1)
    computed from the globally average-pooled features, by a 1×1 conv to `channels / reduction`
    channels (rounded as timm rounds: to a multiple of 8, at least 8), ReLU, a 1×1 conv back and a
    sigmoid. The 1×1 convs have biases and timm's names, `fc1` and `fc2`."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        reduced = max(8, int(channels / reduction + 4) // 8 * 8)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, each sample's residual branch is dropped
    (zeroed) with probability `p` and kept ones are scaled by 1 / (1 - p), so that in evaluation the
    branch passes unchanged, the network without stochastic depth (the paper scales by the survival
    probability at test time instead: the same expectation). timm's DropPath."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"a drop path rate is in [0, 1), not {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep.div_(1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(rate: float, blocks: int) -> list[float]:
    """The drop probability of each of `blocks` residual blocks, first to last: linear in the block's
    index from 0 (the first block) to `rate` (the last), timm's rule for its `drop_path_rate`.
    (Huang et al.'s linear decay gives block l of L the rate l/L · rate, so their first block is
    dropped too, with rate / L.)"""
    if not 0 <= rate < 1:
        raise ValueError(f"drop_path_rate must be in [0, 1), not {rate}")
    return [rate * i / max(blocks - 1, 1) for i in range(blocks)]


class BasicBlock(nn.Module):
    """Two 3×3 convolutions (ResNet-18/34 and the CIFAR nets).

    `downsample` is the shortcut (torchvision's name): option A's zero padding or a projection, None
    for the identity. `plain=True` builds the same layers without a shortcut. `se` adds
    squeeze-and-excitation to the branch's output; `drop_path` is its stochastic-depth rate.
    """

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        plain: bool = False,
        se: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        _check_plain(plain, downsample, drop_path)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes) if se else nn.Identity()
        self.drop_path = DropPath(drop_path)
        self.downsample = downsample
        self.plain = plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) if self.plain else self.branch(x) + self.shortcut(x))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function F(x), before the addition and its ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.drop_path(self.se(self.bn2(self.conv2(out))))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """What the shortcut carries: x itself, or its zero padding or projection (a plain block's is x)."""
        return x if self.downsample is None else self.downsample(x)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2


class Bottleneck(nn.Module):
    """1×1 (reduce), 3×3, 1×1 (restore ×4) convolutions (ResNet-50/101/152, ResNeXt, WRN-50-2).

    `stride_in_1x1=True` strides the first 1×1 as the paper does (v1); False strides the 3×3
    (v1.5, torchvision's default). `groups` and `base_width` give ResNeXt's and Wide ResNet's
    wider, grouped 3×3. `downsample`, `plain`, `se` and `drop_path` as in BasicBlock.
    """

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        stride_in_1x1: bool = False,
        groups: int = 1,
        base_width: int = 64,
        plain: bool = False,
        se: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        _check_plain(plain, downsample, drop_path)
        width = int(planes * base_width / 64) * groups
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_planes, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(planes * self.expansion) if se else nn.Identity()
        self.drop_path = DropPath(drop_path)
        self.downsample = downsample
        self.plain = plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) if self.plain else self.branch(x) + self.shortcut(x))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The residual function F(x), before the addition and its ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.drop_path(self.se(self.bn3(self.conv3(out))))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """What the shortcut carries: x itself, or its zero padding or projection (a plain block's is x)."""
        return x if self.downsample is None else self.downsample(x)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3


def _check_plain(plain: bool, downsample: nn.Module | None, drop_path: float) -> None:
    if plain and downsample is not None:
        raise ValueError("a plain block has no shortcut: pass downsample=None with plain=True")
    if plain and drop_path:
        raise ValueError("a plain block has no shortcut to pass a dropped branch: pass drop_path=0 with plain=True")
