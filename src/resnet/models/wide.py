"""Wide Residual Networks (Zagoruyko & Komodakis 2016).

On ImageNet, Wide ResNet-50-2 and -101-2 are He et al.'s bottleneck ResNet with a 3×3 twice as wide
(torchvision's names, so torchvision's checkpoints load). On CIFAR, WRN-d-k stacks pre-activation
basic blocks k times wider than He et al.'s (the authors' code, with dropout between the convolutions).
"""

from __future__ import annotations

from functools import partial

from .base import CIFAR, IMAGENET, blocks_per_stage
from .preact import PreActBasicBlock, PreActResNet
from .registry import register
from .resnet import CIFAR_WIDTHS, imagenet_resnet

# Wide ResNet-50-2 and -101-2: the bottleneck's 3×3 twice as wide (base width 128 instead of 64).
IMAGENET_WIDE = {"wide_resnet50_2": 50, "wide_resnet101_2": 101}
# WRN-d-k of the paper's CIFAR tables (depth d, widening factor k).
CIFAR_WIDE = ((16, 4), (16, 8), (28, 10), (40, 4))


def cifar_wide_resnet(
    depth: int,
    widen_factor: int,
    *,
    num_classes: int = 10,
    dropout: float = 0.0,
    shortcut: str = "B",
    in_channels: int = 3,
    drop_path_rate: float = 0.0,
) -> PreActResNet:
    """WRN-`depth`-`widen_factor`: a 3×3 stem of 16 filters and three stages of (depth - 4) / 6
    pre-activation basic blocks of 16k, 32k, 64k filters; `dropout` between the two 3×3 of each
    block (the paper's 0.3 for its dropout results); `drop_path_rate`, stochastic depth
    (`drop_path_rates`). Depth counts the 3×3 convolutions and the three 1×1 projections of
    shortcut "B"."""
    n = blocks_per_stage(depth, 2, 4, "Wide ResNets")
    return PreActResNet(
        PreActBasicBlock,
        (n, n, n),
        [w * widen_factor for w in CIFAR_WIDTHS],
        stem="cifar",
        stem_width=CIFAR_WIDTHS[0],
        shortcut=shortcut,
        num_classes=num_classes,
        drop_path_rate=drop_path_rate,
        in_channels=in_channels,
        block_options={"dropout": dropout},
    )


def _register_all() -> None:
    for name, depth in IMAGENET_WIDE.items():
        about = f"Wide ResNet-{depth}-2 (Zagoruyko & Komodakis 2016; torchvision)"
        build = partial(imagenet_resnet, depth, base_width=128)
        register(name, build, family="wide", depth=depth, description=about, **IMAGENET)
    for depth, k in CIFAR_WIDE:
        about = f"CIFAR WRN-{depth}-{k} (Zagoruyko & Komodakis 2016)"
        build = partial(cifar_wide_resnet, depth, k)
        register(f"wrn{depth}_{k}", build, family="wide", depth=depth, description=about, **CIFAR)


_register_all()
