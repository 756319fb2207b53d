"""Densely connected networks (Huang, Liu, van der Maaten, Weinberger 2017, *Densely Connected
Convolutional Networks*): each layer of a dense block sees the concatenated feature maps of all the
layers before it and adds `growth_rate` new ones; transitions between blocks compress the channels
(θ = 0.5) and halve the resolution.

Module names are torchvision's (`features.conv0`, `features.denseblock1.denselayer1.norm1`, ...,
`features.transition1`, `features.norm5`, `classifier`), so that its checkpoints load unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .base import CIFAR, IMAGENET, ClassifierHead, blocks_per_stage, he_init, make_stem
from .blocks import conv1x1, conv3x3
from .registry import register

BOTTLENECK_SIZE = 4  # the 1×1 of each layer gives 4k channels (DenseNet-B)
COMPRESSION = 0.5  # θ of DenseNet-C: a transition keeps floor(θm) of its m channels

# Table 1: growth rate k, layers per dense block, channels of the stem.
IMAGENET_DENSENETS = {
    121: (32, (6, 12, 24, 16), 64),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
    161: (48, (6, 12, 36, 24), 96),
}
# Table 2: DenseNet-BC (L, k) on CIFAR.
CIFAR_DENSENETS_BC = ((100, 12), (250, 24), (190, 40))


class DenseLayer(nn.Module):
    """BN-ReLU-conv1×1 (4k channels), BN-ReLU-conv3×3 (k channels) on the concatenation of the
    block's input and every earlier layer's output; returns the k new channels.

    `memory_efficient` recomputes the concatenation and the 1×1 in the backward pass instead of
    storing them (memory linear instead of quadratic in the layers, for some more time), without
    counting the recomputation in norm1's running statistics.
    """

    def __init__(self, in_planes: int, growth_rate: int, *, dropout: float = 0.0, memory_efficient: bool = False):
        super().__init__()
        width = BOTTLENECK_SIZE * growth_rate
        self.norm1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(in_planes, width)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, growth_rate)
        self.dropout = nn.Dropout(dropout)
        self.memory_efficient = memory_efficient

    def bottleneck(self, *features: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))

    def _contexts(self) -> tuple:
        # forward as usual; the recomputation must not update norm1's running statistics again
        return nullcontext(), unchanged_buffers(self.norm1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and torch.is_grad_enabled():
            out = checkpoint(self.bottleneck, *features, use_reentrant=False, context_fn=self._contexts)
        else:
            out = self.bottleneck(*features)
        return self.dropout(self.conv2(self.relu2(self.norm2(out))))


@contextmanager
def unchanged_buffers(module: nn.Module) -> Iterator[None]:
    """Restore the buffers of `module` (e.g. BN's running statistics) on leaving the `with` block."""
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:  # also when the checkpoint stops the recomputation early, by an exception
        with torch.no_grad():
            for buffer, value in zip(module.buffers(), saved):
                buffer.copy_(value)


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers (`denselayer1` ...); returns the input and all their outputs, concatenated."""

    def __init__(self, num_layers: int, in_planes: int, growth_rate: int, **layer_options) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_planes + i * growth_rate, growth_rate, **layer_options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1×1 (compression) and 2×2 average pooling between two dense blocks."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_planes),
                relu=nn.ReLU(inplace=True),
                conv=conv1x1(in_planes, out_planes),
                pool=nn.AvgPool2d(2, stride=2),
            )
        )


class DenseNet(ClassifierHead):
    """A stem, dense blocks joined by transitions, a final BN (`norm5`), ReLU, global average
    pooling and the classifier `classifier`.

    Args:
        growth_rate: k, the channels each dense layer adds.
        block_config: dense layers of each block.
        stem: "imagenet" (7×7/2 conv, BN-ReLU, 3×3/2 max-pool) or "cifar" (3×3 conv).
        stem_width: channels of the stem convolution.
        num_classes: outputs of the classifier.
        dropout: dropout on the new channels of every dense layer (the paper's 0.2 without
            data augmentation).
        memory_efficient: recompute concatenations in the backward pass (see DenseLayer).
        in_channels: channels of the input images.
    """

    head = "classifier"  # torchvision's name

    def __init__(
        self,
        growth_rate: int,
        block_config: Sequence[int],
        *,
        stem: str,
        stem_width: int,
        num_classes: int,
        dropout: float = 0.0,
        memory_efficient: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        conv0, pool0 = make_stem(stem, in_channels, stem_width)
        stem_layers = [("conv0", conv0)]
        if stem == "imagenet":  # torchvision's: BN-ReLU before the max-pool
            stem_layers += [("norm0", nn.BatchNorm2d(stem_width)), ("relu0", nn.ReLU(inplace=True)), ("pool0", pool0)]
        self.features = nn.Sequential(OrderedDict(stem_layers))
        planes = stem_width
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, planes, growth_rate, dropout=dropout, memory_efficient=memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            planes += num_layers * growth_rate
            if i < len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(planes, int(COMPRESSION * planes)))
                planes = int(COMPRESSION * planes)
        self.features.add_module(f"norm{len(block_config) + 1}", nn.BatchNorm2d(planes))
        self.num_features = planes
        self.classifier = nn.Linear(planes, num_classes)
        he_init(self)
        nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features (N, num_features), after the final BN-ReLU."""
        x = F.relu(self.features(x), inplace=True)
        return torch.flatten(x.mean((2, 3)), 1)


def imagenet_densenet(
    depth: int,
    *,
    num_classes: int = 1000,
    dropout: float = 0.0,
    memory_efficient: bool = False,
    in_channels: int = 3,
) -> DenseNet:
    """DenseNet-121/169/201/161 of Table 1 (DenseNet-BC, θ = 0.5)."""
    growth_rate, block_config, stem_width = IMAGENET_DENSENETS[depth]
    return DenseNet(
        growth_rate,
        block_config,
        stem="imagenet",
        stem_width=stem_width,
        num_classes=num_classes,
        dropout=dropout,
        memory_efficient=memory_efficient,
        in_channels=in_channels,
    )


def cifar_densenet_bc(
    depth: int,
    growth_rate: int,
    *,
    num_classes: int = 10,
    dropout: float = 0.0,
    memory_efficient: bool = False,
    in_channels: int = 3,
) -> DenseNet:
    """DenseNet-BC (L = `depth`, k = `growth_rate`) for CIFAR: a 3×3 stem of 2k filters and three
    dense blocks of (L - 4) / 6 bottleneck layers each."""
    n = blocks_per_stage(depth, 2, 4, "CIFAR DenseNet-BCs")
    return DenseNet(
        growth_rate,
        (n, n, n),
        stem="cifar",
        stem_width=2 * growth_rate,
        num_classes=num_classes,
        dropout=dropout,
        memory_efficient=memory_efficient,
        in_channels=in_channels,
    )


def _register_all() -> None:
    for depth, (k, _, _) in IMAGENET_DENSENETS.items():
        about = f"DenseNet-{depth}, k={k} (Huang et al. 2017, Table 1)"
        build = partial(imagenet_densenet, depth)
        register(f"densenet{depth}", build, family="densenet", depth=depth, description=about, **IMAGENET)
    for depth, k in CIFAR_DENSENETS_BC:
        about = f"CIFAR DenseNet-BC, L={depth}, k={k} (Huang et al. 2017, Table 2)"
        build = partial(cifar_densenet_bc, depth, k)
        register(f"densenet_bc{depth}_k{k}", build, family="densenet", depth=depth, description=about, **CIFAR)


_register_all()
