"""SE-ResNet and SE-ResNeXt (Hu, Shen, Sun 2018, *Squeeze-and-Excitation Networks*, Fig. 3), under
timm's names: He et al.'s ResNet (and Xie et al.'s ResNeXt) whose every residual branch ends in a
squeeze-and-excitation module before the addition (`se=True`; `SqueezeExcite`: reduction 16, its
width rounded to a multiple of 8 as timm's). The 7×7 stem and torchvision's v1.5 bottleneck, as
timm's; not the SENet-154 of the paper's Table 16, whose stem and shortcuts differ.
"""

from __future__ import annotations

from functools import partial

from .base import IMAGENET
from .registry import register
from .resnet import imagenet_resnet

# timm's name -> (depth, cardinality C, bottleneck width d).
NETWORKS = {
    "seresnet18": (18, 1, 64),
    "seresnet34": (34, 1, 64),
    "seresnet50": (50, 1, 64),
    "seresnet101": (101, 1, 64),
    "seresnet152": (152, 1, 64),
    "seresnext50_32x4d": (50, 32, 4),
}


def _register_all() -> None:
    for name, (depth, c, d) in NETWORKS.items():
        about = f"SE-ResNeXt-{depth} {c}×{d}d" if c > 1 else f"SE-ResNet-{depth}"
        build = partial(imagenet_resnet, depth, groups=c, base_width=d, se=True)
        register(name, build, family="se", depth=depth, description=f"{about} (Hu et al. 2018)", **IMAGENET)


_register_all()
