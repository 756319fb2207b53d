"""Super-resolution networks built on residual learning, registered as family "superres":

- `vdsr` (Kim et al. 2016): 20 3×3 convolutions on the bicubic-upscaled image, predicting the
  residual between it and the high-resolution image (the global residual).
- `edsr_baseline` (Lim et al. 2017): residual blocks without batch norm on the low-resolution image,
  a long skip over the body, and pixel-shuffle upsampling.

`global_residual=False` builds the same layers without the global residual (the comparison).
Inputs and outputs are RGB in [0, 1]. Training, metrics and upscaling are in `resnet.superres`.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import check_choice
from .registry import register

SCALES = (2, 4)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3×3 convolution with padding 1 and a bias (no batch norm follows in these networks)."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class VDSR(nn.Module):
    """`num_layers` 3×3 convolutions of `width` filters with ReLU between, on the bicubic-upscaled image.

    Output = input + predicted residual (global_residual=True), or the prediction itself. VDSR works
    at the output size, so `scale` changes no weight: it records what the network was trained for.
    """

    input_is_upscaled = True  # the input is the low-resolution image upscaled ×scale by bicubic

    def __init__(self, *, scale: int, global_residual: bool, num_layers: int, width: int, in_channels: int = 3) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"VDSR needs at least 2 layers, not {num_layers}")
        self.scale, self.global_residual = scale, global_residual
        layers = [conv3x3(in_channels, width), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [conv3x3(width, width), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.last = conv3x3(width, in_channels)
        # Kim et al. initialize as He et al. 2015 ("Delving deep into rectifiers"); biases at zero.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.last(self.body(x))
        return x + out if self.global_residual else out


class ResBlock(nn.Module):
    """EDSR's residual block: conv, ReLU, conv, scaled by `res_scale`, plus the identity; no batch norm."""

    def __init__(self, width: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(self.relu(self.conv1(x)))


class EDSR(nn.Module):
    """Head conv, `num_blocks` residual blocks and a conv (the body), the long skip over the body,
    pixel-shuffle upsampling ×scale, tail conv. Takes the low-resolution image.

    The official code's fixed RGB mean shift is left out: the biases of head and tail absorb it.
    """

    input_is_upscaled = False  # the network upsamples the low-resolution image itself

    def __init__(self, *, scale: int, global_residual: bool, num_blocks: int, width: int, in_channels: int = 3) -> None:
        super().__init__()
        self.scale, self.global_residual = scale, global_residual
        self.head = conv3x3(in_channels, width)
        self.body = nn.Sequential(*(ResBlock(width) for _ in range(num_blocks)), conv3x3(width, width))
        # ×4 is two ×2 steps, as in the paper: conv to 4× the channels, then pixel shuffle.
        steps = []
        for _ in range({2: 1, 4: 2}[scale]):
            steps += [conv3x3(width, 4 * width), nn.PixelShuffle(2)]
        self.upsample = nn.Sequential(*steps)
        self.tail = conv3x3(width, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        body = self.body(x)
        return self.tail(self.upsample(x + body if self.global_residual else body))


def vdsr(*, scale: int = 2, global_residual: bool = True, num_layers: int = 20, width: int = 64) -> VDSR:
    """VDSR (Kim et al. 2016): 20 layers of 64 3×3 filters learning the residual over bicubic."""
    check_choice("scale", scale, SCALES)
    return VDSR(scale=scale, global_residual=global_residual, num_layers=num_layers, width=width)


def edsr_baseline(*, scale: int = 2, global_residual: bool = True, num_blocks: int = 16, width: int = 64) -> EDSR:
    """The EDSR baseline (Lim et al. 2017): 16 residual blocks of 64 filters, no batch norm, ×2 or ×4."""
    check_choice("scale", scale, SCALES)
    return EDSR(scale=scale, global_residual=global_residual, num_blocks=num_blocks, width=width)


def _register_all() -> None:
    # input_shape: what each network takes to produce a 32×32 image at ×2 (a CIFAR image).
    register(
        "vdsr",
        vdsr,
        family="superres",
        depth=20,
        input_size=32,
        num_classes=None,
        input_shape=(3, 32, 32),
        description="VDSR (Kim et al. 2016): 20 conv layers, global residual over the bicubic-upscaled input",
    )
    register(
        "edsr_baseline",
        edsr_baseline,
        family="superres",
        depth=36,  # head, 16 blocks of 2, body conv, upsampling conv (×2), tail
        input_size=16,
        num_classes=None,
        input_shape=(3, 16, 16),
        description="EDSR baseline (Lim et al. 2017): 16 residual blocks without BN, long skip, pixel shuffle",
    )


_register_all()
