"""Image quality as super-resolution papers report it: PSNR and SSIM (Wang et al. 2004).

Images are (N, C, H, W) or (C, H, W) tensors of RGB in [0, 1]. As is customary, both metrics are
measured on the luma (Y of ITU-R BT.601 YCbCr, `channel="y"`) after cropping `border` pixels (the
scale) from every side; `channel="rgb"` measures the three channels instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHANNELS = ("y", "rgb")
# SSIM constants of Wang et al. 2004: an 11×11 Gaussian window of σ = 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """The BT.601 luma of RGB in [0, 1], in [16/255, 235/255] (MATLAB's rgb2ycbcr), shape (N, 1, H, W)."""
    weights = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return ((x * weights).sum(1, keepdim=True) + 16.0) / 255.0


def prepare(x: torch.Tensor, border: int = 0, channel: str = "y") -> torch.Tensor:
    """`x` as float64 (N, C, H, W) on the measured channel(s) with `border` pixels cropped from each side."""
    if channel not in CHANNELS:
        raise ValueError(f"invalid channel {channel!r}; choose one of {', '.join(CHANNELS)}")
    x = x.unsqueeze(0) if x.dim() == 3 else x
    x = x.double()
    if channel == "y":
        x = rgb_to_y(x)
    if border:
        x = x[..., border:-border, border:-border]
    return x


def psnr(x: torch.Tensor, y: torch.Tensor, border: int = 0, channel: str = "y") -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image pair, 10·log10(1 / MSE) (peak 1), shape (N,)."""
    x, y = prepare(x, border, channel), prepare(y, border, channel)
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The size×size Gaussian of standard deviation `sigma`, summing to 1 (float64)."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor, border: int = 0, channel: str = "y") -> torch.Tensor:
    """Structural similarity of each image pair, shape (N,): the mean of Wang et al.'s SSIM map.

    Local statistics come from the Gaussian window over every position where it fits whole (no
    padding, as Wang's reference code), per channel; the map is averaged over positions and channels.
    """
    x, y = prepare(x, border, channel), prepare(y, border, channel)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, not {tuple(x.shape[-2:])}")
    c = x.shape[1]
    window = gaussian_window().to(x.device).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K·L)² with the dynamic range L = 1
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)
