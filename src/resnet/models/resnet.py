"""The networks of He et al. 2015: the ImageNet family (Table 1), the CIFAR family (§4.2) and
their plain counterparts, all built by one `ResNet` class."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from .base import ClassifierHead, blocks_per_stage, check_choice, he_init, make_stem
from .blocks import BasicBlock, Bottleneck, make_shortcut
from .registry import register

VARIANTS = ("v1", "v1.5")

# Table 1: block type and blocks per stage of each ImageNet depth.
IMAGENET_DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# §4.2: 6n+2 layers, n basic blocks in each of three stages of 16/32/64 filters.
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_WIDTHS = (16, 32, 64)


class ResNet(ClassifierHead):
    """A stem, stages of residual blocks, global average pooling and a fully connected classifier.

    Args:
        block: the block class, built as `block(in_planes, planes, stride, downsample,
            **block_options)`; its attribute `expansion` gives output channels per `planes`.
        layers: blocks per stage.
        widths: `planes` of each stage; every stage after the first starts with stride 2.
        stem: "imagenet" (7×7/2 conv, 3×3/2 max-pool) or "cifar" (3×3 conv).
        shortcut: "A", "B" or "C" (see `make_shortcut`); None builds the plain network (every block
            `plain=True`).
        num_classes: outputs of the classifier `fc`.
        zero_init_residual: start the last BN of every residual branch at zero, so each block
            begins as the identity.
        in_channels: channels of the input images.
        block_options: further keyword arguments of every block (e.g. Bottleneck's
            `stride_in_1x1`, `groups`, `base_width`).
    """

    def __init__(
        self,
        block: type[nn.Module],
        layers: Sequence[int],
        widths: Sequence[int],
        *,
        stem: str,
        shortcut: str | None,
        num_classes: int,
        zero_init_residual: bool = False,
        in_channels: int = 3,
        block_options: dict | None = None,
    ) -> None:
        super().__init__()
        if shortcut is None and zero_init_residual:
            raise ValueError("zero_init_residual needs shortcuts: a plain network would start at zero")
        self.expansion = block.expansion
        self.in_planes = widths[0]
        self.conv1, self.maxpool = make_stem(stem, in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        block_options = {**(block_options or {}), **({"plain": True} if shortcut is None else {})}
        for i, (blocks, planes) in enumerate(zip(layers, widths)):
            stage = self._make_layer(block, planes, blocks, 1 if i == 0 else 2, shortcut, block_options)
            self.add_module(f"layer{i + 1}", stage)
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[-1] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, shortcut, options: dict) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            out_planes, block_stride = planes * self.expansion, stride if i == 0 else 1
            downsample = None if shortcut is None else make_shortcut(shortcut, self.in_planes, out_planes, block_stride)
            layers.append(block(self.in_planes, planes, block_stride, downsample, **options))
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        he_init(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features (N, num_features)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return torch.flatten(self.avgpool(x), 1)


def imagenet_resnet(
    depth: int,
    *,
    num_classes: int = 1000,
    shortcut: str | None = "B",
    variant: str = "v1.5",
    zero_init_residual: bool = False,
    in_channels: int = 3,
    groups: int = 1,
    base_width: int = 64,
) -> ResNet:
    """ResNet-18/34/50/101/152 of Table 1 (shortcut=None: the plain network)."""
    check_choice("variant", variant, VARIANTS)
    block, layers = IMAGENET_DEPTHS[depth]
    options = {}
    if block is Bottleneck:
        options = {"stride_in_1x1": variant == "v1", "groups": groups, "base_width": base_width}
    elif (groups, base_width) != (1, 64):
        raise ValueError("groups and base_width apply to bottleneck networks (50 layers and more)")
    return ResNet(
        block,
        layers,
        IMAGENET_WIDTHS,
        stem="imagenet",
        shortcut=shortcut,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        in_channels=in_channels,
        block_options=options,
    )


def cifar_resnet(
    depth: int,
    *,
    num_classes: int = 10,
    shortcut: str | None = "A",
    zero_init_residual: bool = False,
    in_channels: int = 3,
) -> ResNet:
    """The 6n+2-layer CIFAR networks of §4.2 (shortcut=None: the plain network)."""
    n = blocks_per_stage(depth, 2, 2, "CIFAR ResNets")
    return ResNet(
        BasicBlock,
        (n, n, n),
        CIFAR_WIDTHS,
        stem="cifar",
        shortcut=shortcut,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        in_channels=in_channels,
    )


def _register_all() -> None:
    for depth in IMAGENET_DEPTHS:
        meta = dict(family="imagenet", depth=depth, input_size=224, num_classes=1000)
        register(f"resnet{depth}", partial(imagenet_resnet, depth), description=f"ResNet-{depth} (Table 1)", **meta)
        register(
            f"plain{depth}",
            partial(imagenet_resnet, depth, shortcut=None),
            description=f"plain-{depth}: ResNet-{depth} without shortcuts",
            **meta,
        )
    for depth in CIFAR_DEPTHS:
        meta = dict(family="cifar", depth=depth, input_size=32, num_classes=10)
        register(f"resnet{depth}", partial(cifar_resnet, depth), description=f"CIFAR ResNet-{depth} (§4.2)", **meta)
        register(
            f"plain{depth}",
            partial(cifar_resnet, depth, shortcut=None),
            description=f"CIFAR plain-{depth}: ResNet-{depth} without shortcuts",
            **meta,
        )


_register_all()
