"""ResNet-C and ResNet-D (He, Zhang, Zhang, Zhang, Xie, Li 2019, *Bag of Tricks for Image
Classification with Convolutional Neural Networks*, §4.2, Fig. 2), under timm's names.

ResNet-C replaces the 7×7/2 stem convolution by three 3×3 convolutions of 32, 32 and 64 filters,
the first strided (`stem="deep"`); ResNet-D also average-pools 2×2 in front of every projection
shortcut that strides, whose 1×1 then strides 1 (`avg_down=True`). (ResNet-B, the stride in the
bottleneck's 3×3, is torchvision's v1.5, every bottleneck net's default here.) Layer counts are the
names': the deep stem counts as the one layer it replaces.
"""

from __future__ import annotations

from functools import partial

from .base import IMAGENET
from .registry import register
from .resnet import imagenet_resnet

# timm's name -> (depth, cardinality C, bottleneck width d, ResNet-D or only -C).
NETWORKS = {
    "resnet18d": (18, 1, 64, True),
    "resnet26d": (26, 1, 64, True),
    "resnet34d": (34, 1, 64, True),
    "resnet50d": (50, 1, 64, True),
    "resnet101d": (101, 1, 64, True),
    "resnet152d": (152, 1, 64, True),
    "resnet50c": (50, 1, 64, False),
    "resnext50d_32x4d": (50, 32, 4, True),
}


def _register_all() -> None:
    for name, (depth, c, d, avg_down) in NETWORKS.items():
        net = f"ResNeXt-{depth}-D {c}×{d}d" if c > 1 else f"ResNet-{depth}-{'D' if avg_down else 'C'}"
        tweaks = "deep 3×3 stem, average-pool shortcuts" if avg_down else "deep 3×3 stem"
        build = partial(imagenet_resnet, depth, groups=c, base_width=d, stem="deep", avg_down=avg_down)
        about = f"{net} (He et al. 2019, Bag of Tricks): {tweaks}"
        register(name, build, family="tricks", depth=depth, description=about, **IMAGENET)


_register_all()
