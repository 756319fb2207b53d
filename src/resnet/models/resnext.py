"""ResNeXt (Xie et al. 2017, *Aggregated Residual Transformations*).

On ImageNet it is He et al.'s bottleneck ResNet whose 3×3 is a grouped convolution of C groups of d
channels (`groups`, `base_width`; torchvision's names, so torchvision's checkpoints load). On CIFAR,
ResNeXt-29 is the same bottleneck network on a 3×3 stem (the authors' resnext.lua).
"""

from __future__ import annotations

from functools import partial

from .base import CIFAR, IMAGENET, blocks_per_stage
from .blocks import Bottleneck
from .registry import register
from .resnet import ResNet, imagenet_resnet

# torchvision's ResNeXts: name -> (depth, cardinality C, bottleneck width d of the first stage).
IMAGENET_RESNEXTS = {
    "resnext50_32x4d": (50, 32, 4),
    "resnext101_32x8d": (101, 32, 8),
    "resnext101_64x4d": (101, 64, 4),
}
# §5.3 (Table 7): ResNeXt-29, C×d, on CIFAR.
CIFAR_RESNEXTS = {"resnext29_8x64d": (8, 64), "resnext29_16x64d": (16, 64)}
RESNEXT_CIFAR_WIDTHS = (64, 128, 256)  # planes of the three stages (×4 outputs: 256, 512, 1024)


def cifar_resnext(
    depth: int,
    cardinality: int,
    bottleneck_width: int,
    *,
    num_classes: int = 10,
    shortcut: str = "B",
    zero_init_residual: bool = False,
    in_channels: int = 3,
    avg_down: bool = False,
    se: bool = False,
    drop_path_rate: float = 0.0,
) -> ResNet:
    """ResNeXt-`depth` for CIFAR: a 3×3 stem of 64 filters and three stages of (depth - 2) / 9
    bottleneck blocks of 64, 128, 256 planes, whose 3×3 has `cardinality` groups of
    `bottleneck_width` channels in the first stage (doubling per stage), strided in the 3×3.
    `avg_down`, `se`, `drop_path_rate` as for `cifar_resnet`."""
    n = blocks_per_stage(depth, 3, 2, "CIFAR ResNeXts")
    return ResNet(
        Bottleneck,
        (n, n, n),
        RESNEXT_CIFAR_WIDTHS,
        stem="cifar",
        shortcut=shortcut,
        num_classes=num_classes,
        zero_init_residual=zero_init_residual,
        avg_down=avg_down,
        drop_path_rate=drop_path_rate,
        in_channels=in_channels,
        # Bottleneck's base_width is the width of a group at 64 planes: d of the first stage.
        block_options={"groups": cardinality, "base_width": bottleneck_width, "se": se},
    )


def _register_all() -> None:
    for name, (depth, c, d) in IMAGENET_RESNEXTS.items():
        about = f"ResNeXt-{depth} {c}×{d}d (Xie et al. 2017)"
        build = partial(imagenet_resnet, depth, groups=c, base_width=d)
        register(name, build, family="resnext", depth=depth, description=about, **IMAGENET)
    for name, (c, d) in CIFAR_RESNEXTS.items():
        about = f"CIFAR ResNeXt-29 {c}×{d}d (Xie et al. 2017, Table 7)"
        register(name, partial(cifar_resnext, 29, c, d), family="resnext", depth=29, description=about, **CIFAR)


_register_all()
