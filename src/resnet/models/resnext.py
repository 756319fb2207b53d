"""ResNeXt (Xie et al. 2017, *Aggregated Residual Transformations*) and Wide ResNet (Zagoruyko &
Komodakis 2016, *Wide Residual Networks*).

On ImageNet both are He et al.'s bottleneck ResNet with another 3×3 (torchvision's names, so
torchvision's checkpoints load): ResNeXt's is a grouped convolution of C groups of d channels
(`groups`, `base_width`), Wide ResNet-50-2's is twice as wide. On CIFAR, ResNeXt-29 is the same
bottleneck network on a 3×3 stem (the authors' resnext.lua) and WRN-d-k stacks pre-activation basic
blocks k times wider than He et al.'s (the authors' code, with dropout between the convolutions).
"""

from __future__ import annotations

from functools import partial

from .blocks import Bottleneck
from .preact import CIFAR, IMAGENET, PreActBasicBlock, PreActResNet
from .registry import register
from .resnet import CIFAR_WIDTHS, ResNet, imagenet_resnet

# torchvision's ResNeXts: name -> (depth, cardinality C, bottleneck width d of the first stage).
IMAGENET_RESNEXTS = {
    "resnext50_32x4d": (50, 32, 4),
    "resnext101_32x8d": (101, 32, 8),
    "resnext101_64x4d": (101, 64, 4),
}
# §5.3 (Table 7): ResNeXt-29, C×d, on CIFAR.
CIFAR_RESNEXTS = {"resnext29_8x64d": (8, 64), "resnext29_16x64d": (16, 64)}
RESNEXT_CIFAR_WIDTHS = (64, 128, 256)  # planes of the three stages (×4 outputs: 256, 512, 1024)
# Wide ResNet-50-2 and -101-2: the bottleneck's 3×3 twice as wide (base width 128 instead of 64).
IMAGENET_WIDE = {"wide_resnet50_2": 50, "wide_resnet101_2": 101}
# WRN-d-k of the paper's CIFAR tables (depth d, widening factor k).
CIFAR_WIDE = ((16, 4), (16, 8), (28, 10), (40, 4))


def cifar_resnext(
    depth: int,
    cardinality: int,
    bottleneck_width: int,
    *,
    num_classes: int = 10,
    shortcut: str = "B",
    zero_init_residual: bool = False,
    in_channels: int = 3,
) -> ResNet:
    """ResNeXt-`depth` for CIFAR: a 3×3 stem of 64 filters and three stages of (depth - 2) / 9
    bottleneck blocks of 64, 128, 256 planes, whose 3×3 has `cardinality` groups of
    `bottleneck_width` channels in the first stage (doubling per stage), strided in the 3×3."""
    if (depth - 2) % 9 or depth < 11:
        raise ValueError(f"CIFAR ResNeXts have 9n+2 layers (29, 38, ...), not {depth}")
    n = (depth - 2) // 9
    return ResNet(
        Bottleneck,
        (n, n, n),
        RESNEXT_CIFAR_WIDTHS,
        stem="cifar",
        shortcut=shortcut,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        in_channels=in_channels,
        # Bottleneck's base_width is the width of a group at 64 planes: d of the first stage.
        block_options={"groups": cardinality, "base_width": bottleneck_width},
    )


def cifar_wide_resnet(
    depth: int,
    widen_factor: int,
    *,
    num_classes: int = 10,
    dropout: float = 0.0,
    shortcut: str = "B",
    in_channels: int = 3,
) -> PreActResNet:
    """WRN-`depth`-`widen_factor`: a 3×3 stem of 16 filters and three stages of (depth - 4) / 6
    pre-activation basic blocks of 16k, 32k, 64k filters; `dropout` between the two 3×3 of each
    block (the paper's 0.3 for its dropout results). Depth counts the 3×3 convolutions and the three
    1×1 projections of shortcut "B"."""
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"Wide ResNets have 6n+4 layers (10, 16, 22, 28, 40, ...), not {depth}")
    n = (depth - 4) // 6
    return PreActResNet(
        PreActBasicBlock,
        (n, n, n),
        [w * widen_factor for w in CIFAR_WIDTHS],
        stem="cifar",
        stem_width=CIFAR_WIDTHS[0],
        shortcut=shortcut,
        num_classes=num_classes,
        in_channels=in_channels,
        block_options={"dropout": dropout},
    )


def _register_all() -> None:
    for name, (depth, c, d) in IMAGENET_RESNEXTS.items():
        about = f"ResNeXt-{depth} {c}×{d}d (Xie et al. 2017)"
        build = partial(imagenet_resnet, depth, groups=c, base_width=d)
        register(name, build, family="resnext", depth=depth, description=about, **IMAGENET)
    for name, (c, d) in CIFAR_RESNEXTS.items():
        about = f"CIFAR ResNeXt-29 {c}×{d}d (Xie et al. 2017, Table 7)"
        register(name, partial(cifar_resnext, 29, c, d), family="resnext", depth=29, description=about, **CIFAR)
    for name, depth in IMAGENET_WIDE.items():
        about = f"Wide ResNet-{depth}-2 (Zagoruyko & Komodakis 2016; torchvision)"
        build = partial(imagenet_resnet, depth, base_width=128)
        register(name, build, family="wide", depth=depth, description=about, **IMAGENET)
    for depth, k in CIFAR_WIDE:
        about = f"CIFAR WRN-{depth}-{k} (Zagoruyko & Komodakis 2016)"
        build = partial(cifar_wide_resnet, depth, k)
        register(f"wrn{depth}_{k}", build, family="wide", depth=depth, description=about, **CIFAR)


_register_all()
