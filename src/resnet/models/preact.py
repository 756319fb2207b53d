"""Pre-activation residual networks (He, Zhang, Ren, Sun 2016, *Identity Mappings in Deep Residual
Networks*): BN and ReLU move in front of each convolution (Fig. 4e), so that the shortcut path is a
clean identity from block to block and a final BN-ReLU precedes the pooling.

Where a block changes the shape, its shortcut is a 1×1 projection of the pre-activated input (no BN:
the sum is normalized by the next block); elsewhere it is the identity of the raw input, as in the
authors' code (resnet-1k-layers) and Wide ResNet's: shortcut "B" ("C" projects on every block).
The ImageNet stem is the 7×7 convolution and the max-pool without BN-ReLU (the first block
pre-activates), as in Big Transfer's and timm's ResNetV2.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from .base import CIFAR, IMAGENET, ClassifierHead, blocks_per_stage, check_choice, he_init, make_stem
from .blocks import BasicBlock, DropPath, GlobalPool, conv1x1, conv3x3, drop_path_rates
from .registry import register
from .resnet import CIFAR_WIDTHS, IMAGENET_DEPTHS, IMAGENET_WIDTHS, VARIANTS

SHORTCUTS = ("B", "C")
# The paper's CIFAR networks: the basic-block ResNet-110, the bottleneck ResNet-164 and ResNet-1001.
CIFAR_DEPTHS = {110: "basic", 164: "bottleneck", 1001: "bottleneck"}


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3×3, BN-ReLU-conv3×3 (Fig. 4e); with `dropout`, Wide ResNet's block (dropout
    between the two convolutions, Zagoruyko & Komodakis 2016 Fig. 1d).

    `downsample` is the shortcut's 1×1 projection of the pre-activated input, None for the identity;
    `drop_path` the branch's stochastic-depth rate.
    """

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.norm2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.drop_path = DropPath(drop_path)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.relu(self.norm1(x))
        shortcut = x if self.downsample is None else self.downsample(preact)
        out = self.conv1(preact)
        out = self.conv2(self.dropout(self.relu(self.norm2(out))))
        return self.drop_path(out) + shortcut


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1×1 (reduce), BN-ReLU-conv3×3, BN-ReLU-conv1×1 (restore ×4), Fig. 4e with the
    bottleneck of ResNet-164/1001. `stride_in_1x1` strides the first 1×1 as the authors' CIFAR code
    does; False strides the 3×3 (fb.resnet.torch, torchvision's v1.5). `downsample` and `drop_path`
    as in PreActBasicBlock."""

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        stride_in_1x1: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.norm1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv1x1(in_planes, planes, stride_1x1)
        self.norm2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride_3x3)
        self.norm3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.drop_path = DropPath(drop_path)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = self.relu(self.norm1(x))
        shortcut = x if self.downsample is None else self.downsample(preact)
        out = self.conv1(preact)
        out = self.conv2(self.relu(self.norm2(out)))
        out = self.conv3(self.relu(self.norm3(out)))
        return self.drop_path(out) + shortcut


class PreActResNet(ClassifierHead):
    """A stem, stages of pre-activation blocks, a final BN-ReLU, global average pooling and `fc`.

    Args:
        block: PreActBasicBlock or PreActBottleneck, built as `block(in_planes, planes, stride,
            downsample, **block_options)`.
        layers: blocks per stage.
        widths: `planes` of each stage; every stage after the first starts with stride 2.
        stem: "imagenet" (7×7/2 conv, 3×3/2 max-pool) or "cifar" (3×3 conv).
        stem_width: output channels of the stem convolution (Wide ResNet's is narrower than its
            first stage).
        shortcut: "B", a 1×1 projection (without BN) where the shape changes, else the identity;
            "C", a projection on every block.
        num_classes: outputs of the classifier `fc`.
        drop_path_rate: stochastic depth, the drop rate of the last block (`drop_path_rates`).
        in_channels: channels of the input images.
        block_options: further keyword arguments of every block.
    """

    def __init__(
        self,
        block: type[nn.Module],
        layers: Sequence[int],
        widths: Sequence[int],
        *,
        stem: str,
        stem_width: int,
        shortcut: str = "B",
        num_classes: int,
        drop_path_rate: float = 0.0,
        in_channels: int = 3,
        block_options: dict | None = None,
    ) -> None:
        super().__init__()
        check_choice("shortcut", shortcut, SHORTCUTS)
        self.conv1, self.maxpool = make_stem(stem, in_channels, stem_width)
        in_planes = stem_width
        rates, block_options = iter(drop_path_rates(drop_path_rate, sum(layers))), block_options or {}
        for i, (blocks, planes) in enumerate(zip(layers, widths)):
            stage = []
            for j in range(blocks):
                stride, out_planes = 2 if i > 0 and j == 0 else 1, planes * block.expansion
                project = shortcut == "C" or stride != 1 or in_planes != out_planes
                downsample = conv1x1(in_planes, out_planes, stride) if project else None
                stage.append(block(in_planes, planes, stride, downsample, drop_path=next(rates), **block_options))
                in_planes = out_planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.num_stages = len(layers)
        self.num_features = in_planes
        self.norm = nn.BatchNorm2d(in_planes)  # the final BN-ReLU: the last block's sum is not normalized
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = GlobalPool()
        self.fc = nn.Linear(in_planes, num_classes)
        he_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features (N, num_features), after the final BN-ReLU."""
        x = self.maxpool(self.conv1(x))
        for stage in self.stages():
            x = stage(x)
        return torch.flatten(self.avgpool(self.relu(self.norm(x))), 1)


def imagenet_preact_resnet(
    depth: int,
    *,
    num_classes: int = 1000,
    shortcut: str = "B",
    variant: str = "v1.5",
    in_channels: int = 3,
    drop_path_rate: float = 0.0,
) -> PreActResNet:
    """Pre-activation ResNet-18/34/50/101/152: the stages of Table 1 of He et al. 2015.

    `variant` (bottleneck nets): "v1.5" strides the 3×3 (fb.resnet.torch), "v1" the first 1×1.
    `drop_path_rate`: stochastic depth (`drop_path_rates`).
    """
    check_choice("variant", variant, VARIANTS)
    plain_block, layers = IMAGENET_DEPTHS[depth]
    if plain_block is BasicBlock:
        block, options = PreActBasicBlock, {}
    else:
        block, options = PreActBottleneck, {"stride_in_1x1": variant == "v1"}
    return PreActResNet(
        block,
        layers,
        IMAGENET_WIDTHS,
        stem="imagenet",
        stem_width=IMAGENET_WIDTHS[0],
        shortcut=shortcut,
        num_classes=num_classes,
        drop_path_rate=drop_path_rate,
        in_channels=in_channels,
        block_options=options,
    )


def cifar_preact_resnet(
    block: str,
    depth: int,
    *,
    num_classes: int = 10,
    shortcut: str = "B",
    in_channels: int = 3,
    drop_path_rate: float = 0.0,
) -> PreActResNet:
    """The CIFAR pre-activation ResNets: `block` "basic" (6n+2 layers) or "bottleneck" (9n+2 layers,
    stages of 16/32/64 planes ×4 outputs, the first 1×1 strided as in the authors' code).
    `drop_path_rate`: stochastic depth (`drop_path_rates`)."""
    check_choice("block", block, ("basic", "bottleneck"))
    n = blocks_per_stage(depth, 2 if block == "basic" else 3, 2, f"CIFAR pre-activation {block} ResNets")
    cls, options = (PreActBasicBlock, {}) if block == "basic" else (PreActBottleneck, {"stride_in_1x1": True})
    return PreActResNet(
        cls,
        (n, n, n),
        CIFAR_WIDTHS,
        stem="cifar",
        stem_width=CIFAR_WIDTHS[0],
        shortcut=shortcut,
        num_classes=num_classes,
        drop_path_rate=drop_path_rate,
        in_channels=in_channels,
        block_options=options,
    )


def _register_all() -> None:
    for depth, block in CIFAR_DEPTHS.items():
        about = f"CIFAR pre-activation ResNet-{depth}, {block} blocks (He et al. 2016, Tables 2-4)"
        build = partial(cifar_preact_resnet, block, depth)
        register(f"preact_resnet{depth}", build, family="preact", depth=depth, description=about, **CIFAR)
    for depth in IMAGENET_DEPTHS:
        about = f"pre-activation ResNet-{depth} (He et al. 2016; stages of He et al. 2015, Table 1)"
        build = partial(imagenet_preact_resnet, depth)
        register(f"preact_resnet{depth}", build, family="preact", depth=depth, description=about, **IMAGENET)


_register_all()
