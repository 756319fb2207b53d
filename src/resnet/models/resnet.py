"""The networks of He et al. 2015: the ImageNet family (Table 1), the CIFAR family (§4.2) and
their plain counterparts, all built by one `ResNet` class, which also builds the later variants of
the same design: ResNeXt, Wide ResNet, ResNet-C/-D (`tricks`) and SE-ResNet (`senet`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from .base import ClassifierHead, blocks_per_stage, check_choice, he_init, make_stem
from .blocks import BasicBlock, Bottleneck, GlobalPool, drop_path_rates, make_shortcut
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
# Depths beyond Table 1 that named variants use: timm's 26-layer bottleneck net (resnet26d).
OTHER_DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {26: (Bottleneck, (2, 2, 2, 2))}
IMAGENET_STEMS = ("imagenet", "deep")
# The options a plain network cannot take, and why.
NEEDS_SHORTCUTS = {
    "zero_init_residual": "a plain network would start at zero",
    "avg_down": "it pools in projection shortcuts",
    "drop_path_rate": "a plain block is all residual branch, and dropped it passes nothing",
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# §4.2: 6n+2 layers, n basic blocks in each of three stages of 16/32/64 filters.
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
# Table 6: CIFAR-10 test error (%) of the ResNets of each depth, on the original binaries (110: best of 5 runs).
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
CIFAR_WIDTHS = (16, 32, 64)


class ResNet(ClassifierHead):
    """A stem, stages of residual blocks, global average pooling and a fully connected classifier.

    Args:
        block: the block class, built as `block(in_planes, planes, stride, downsample,
            **block_options)`; its attribute `expansion` gives output channels per `planes`.
        layers: blocks per stage.
        widths: `planes` of each stage; every stage after the first starts with stride 2.
        stem: "imagenet" (7×7/2 conv, 3×3/2 max-pool), "deep" (three 3×3 convs, the max-pool) or
            "cifar" (3×3 conv); see `make_stem`.
        shortcut: "A", "B" or "C" (see `make_shortcut`); None builds the plain network (every block
            `plain=True`).
        num_classes: outputs of the classifier `fc`.
        zero_init_residual: start the last BN of every residual branch at zero, so each block
            begins as the identity.
        avg_down: projection shortcuts that stride average-pool, then project (ResNet-D).
        drop_path_rate: stochastic depth, the drop rate of the last block (`drop_path_rates`).
        in_channels: channels of the input images.
        block_options: further keyword arguments of every block (e.g. Bottleneck's
            `stride_in_1x1`, `groups`, `base_width`; `se`).
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
        avg_down: bool = False,
        drop_path_rate: float = 0.0,
        in_channels: int = 3,
        block_options: dict | None = None,
    ) -> None:
        super().__init__()
        if shortcut is None:
            _refuse_without_shortcuts(
                zero_init_residual=zero_init_residual, avg_down=avg_down, drop_path_rate=drop_path_rate
            )
        self.expansion = block.expansion
        self.in_planes = widths[0]
        self.conv1, self.maxpool = make_stem(stem, in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        block_options = {**(block_options or {}), **({"plain": True} if shortcut is None else {})}
        shortcuts = None if shortcut is None else partial(make_shortcut, shortcut, avg_down=avg_down)
        rates = iter(drop_path_rates(drop_path_rate, sum(layers)))
        for i, (blocks, planes) in enumerate(zip(layers, widths)):
            stage = self._make_layer(block, planes, blocks, 1 if i == 0 else 2, shortcuts, rates, block_options)
            self.add_module(f"layer{i + 1}", stage)
        self.num_stages = len(layers)
        self.avgpool = GlobalPool()
        self.num_features = widths[-1] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, shortcuts, rates, options) -> nn.Sequential:
        """A stage: `shortcuts(in, out, stride)` makes each block's shortcut (None: plain blocks);
        `rates` yields each block's drop path rate."""
        layers = []
        for i in range(blocks):
            out_planes, block_stride = planes * self.expansion, stride if i == 0 else 1
            downsample = None if shortcuts is None else shortcuts(self.in_planes, out_planes, block_stride)
            layers.append(block(self.in_planes, planes, block_stride, downsample, drop_path=next(rates), **options))
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
        x = self.forward_stem(x)
        for stage in self.stages():
            x = stage(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's output: the first block's input."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """The logits from the last block's output (timm's name): pooling, then the classifier."""
        return self.fc(torch.flatten(self.avgpool(x), 1))


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
    stem: str = "imagenet",
    avg_down: bool = False,
    se: bool = False,
    drop_path_rate: float = 0.0,
) -> ResNet:
    """ResNet-18/34/50/101/152 of Table 1 (and timm's 26; shortcut=None: the plain network).

    `stem` "deep" and `avg_down` are He et al. 2019's ResNet-C and ResNet-D (`make_stem`,
    `make_shortcut`); `se` adds squeeze-and-excitation to every block (Hu et al. 2018);
    `drop_path_rate` is stochastic depth (Huang et al. 2016; `drop_path_rates`).
    """
    check_choice("variant", variant, VARIANTS)
    check_choice("stem", stem, IMAGENET_STEMS)
    block, layers = {**IMAGENET_DEPTHS, **OTHER_DEPTHS}[depth]
    options = {"se": se}
    if block is Bottleneck:
        options |= {"stride_in_1x1": variant == "v1", "groups": groups, "base_width": base_width}
    elif (groups, base_width) != (1, 64):
        raise ValueError("groups and base_width apply to bottleneck networks (26, 50 layers and more)")
    return ResNet(
        block,
        layers,
        IMAGENET_WIDTHS,
        stem=stem,
        shortcut=shortcut,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        avg_down=avg_down,
        drop_path_rate=drop_path_rate,
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
    avg_down: bool = False,
    se: bool = False,
    drop_path_rate: float = 0.0,
) -> ResNet:
    """The 6n+2-layer CIFAR networks of §4.2 (shortcut=None: the plain network).

    `avg_down` (shortcut B or C): ResNet-D's average-pool projections; `se`: squeeze-and-excitation
    (Hu et al. 2018 train SE-ResNet-110 on CIFAR); `drop_path_rate`: stochastic depth (Huang et al.
    2016 train ResNet-110 with it). No deep stem: it replaces the 7×7/2 conv of the ImageNet stem,
    and the CIFAR stem is one 3×3 conv at full resolution, with no 7×7 to replace.
    """
    n = blocks_per_stage(depth, 2, 2, "CIFAR ResNets")
    return ResNet(
        BasicBlock,
        (n, n, n),
        CIFAR_WIDTHS,
        stem="cifar",
        shortcut=shortcut,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        avg_down=avg_down,
        drop_path_rate=drop_path_rate,
        in_channels=in_channels,
        block_options={"se": se},
    )


def _refuse_without_shortcuts(**options) -> None:
    """ValueError naming the first option given that a plain network, without shortcuts, cannot take."""
    for option, value in options.items():
        if value:
            raise ValueError(f"{option} needs shortcuts: {NEEDS_SHORTCUTS[option]}")


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
