"""What the families share, written once: the choice check, the stems, the depth rule of the CIFAR
networks, He initialization and the classifier head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import conv3x3

STEMS = ("imagenet", "deep", "cifar")
# The registry's metadata of ImageNet and CIFAR classifiers.
IMAGENET, CIFAR = dict(input_size=224, num_classes=1000), dict(input_size=32, num_classes=10)


def check_choice(option: str, value, choices: Sequence) -> None:
    """Raise ValueError naming the valid choices when `value` is not one of them."""
    if value not in choices:
        raise ValueError(f"invalid {option} {value!r}; choose one of {', '.join(map(str, choices))}")


def make_stem(kind: str, in_channels: int, width: int) -> tuple[nn.Module, nn.Module]:
    """The first convolution and the pooling after it: "imagenet", a 7×7/2 conv and a 3×3/2 max-pool
    (He et al. 2015, Table 1); "deep", the 7×7/2 conv replaced by three 3×3 convs of width/2 (the
    first strided), width/2 and width, with BN-ReLU between them, and the same max-pool (ResNet-C of
    He et al. 2019; timm's `conv1.0` … `conv1.6`); "cifar", a 3×3 conv and no pooling (§4.2)."""
    check_choice("stem", kind, STEMS)
    if kind == "cifar":
        return conv3x3(in_channels, width), nn.Identity()
    if kind == "imagenet":
        conv = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
    else:  # the 7×7 receptive field from three 3×3 convolutions, the first two half as wide
        mid = width // 2
        conv = nn.Sequential(
            conv3x3(in_channels, mid, stride=2),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            conv3x3(mid, mid),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            conv3x3(mid, width),
        )
    return conv, nn.MaxPool2d(3, stride=2, padding=1)


def blocks_per_stage(depth: int, layers_per_block: int, extra: int, networks: str) -> int:
    """n of a CIFAR network of three stages of n blocks, `depth` = 3 · layers_per_block · n + extra
    (6n+2 for He et al.'s); ValueError naming the valid depths otherwise."""
    k = 3 * layers_per_block
    if (depth - extra) % k or depth < k + extra:
        examples = ", ".join(str(k * n + extra) for n in (1, 2, 3))
        raise ValueError(f"{networks} have {k}n+{extra} layers ({examples}, ...), not {depth}")
    return (depth - extra) // k


def he_init(model: nn.Module) -> None:
    """He et al. 2015 ("Delving deep into rectifiers") normal init of every convolution, as torchvision
    and the authors' code do; batch norms start as the identity. A network on the meta device (counted,
    never run) has no values to set: it is left as it is, which spares `resnet models` seconds a network."""
    for m in model.modules():
        if any(p.is_meta for p in m.parameters(recurse=False)):
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ClassifierHead(nn.Module):
    """A network whose pooled features (`forward_features`, N × `num_features`) feed one linear
    classifier, the attribute named by `head` (torchvision's `fc` unless a family says otherwise)."""

    head = "fc"
    num_features: int
    num_stages = 0  # networks without residual stages (DenseNets, MLPs) have none

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features (N, num_features)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.head)(self.forward_features(x))

    def stages(self) -> list[nn.Module]:
        """The residual stages, `layer1` ... `layerN`."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialized classifier for `num_classes` (transfer learning)."""
        old = getattr(self, self.head)
        new = nn.Linear(self.num_features, num_classes, bias=old.bias is not None)
        setattr(self, self.head, new.to(old.weight.device))
