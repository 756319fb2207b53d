"""Shattered gradients (Balduzzi, Frean, Leary, Lewis, Ma, McWilliams 2017): the gradient of a network's
output with respect to its input, along a line of inputs, and how fast it decorrelates. In deep plain
networks it looks like white noise (its autocorrelation falls to zero at lag 1); residual networks keep
it correlated (brown noise).

from resnet.analysis.shattered import autocorrelation, line_gradients
g = line_gradients(model, a, b, output=3)     # d f_3(x_t) / dt at 256 points x_t from a to b
r = line_gradients(model, a, a + random_direction(a, norm=float((b - a).norm()), seed=0), output=3)
acf = autocorrelation(g, lags=32)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

POINTS = 256  # inputs along the line, as Balduzzi et al.'s figures sample it


def line_gradients(
    model: nn.Module, a: torch.Tensor, b: torch.Tensor, output: int, points: int = POINTS, batch: int = 64
) -> np.ndarray:
    """The derivative of output `output` of `model` (in eval mode) along the line from input `a` to
    input `b`: d f(x_t)/dt = ∇f(x_t)·(b - a) at `points` equally spaced x_t = a + t (b - a), t in [0, 1]."""
    model.eval()
    t = torch.linspace(0, 1, points, device=a.device).view(-1, *([1] * a.dim()))
    line = a + t * (b - a)
    derivatives = []
    for chunk in line.split(batch):
        x = chunk.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x)[:, output].sum(), x)  # each output depends on its own input
        derivatives.append((grad * (b - a)).flatten(1).sum(1).detach())
    return torch.cat(derivatives).double().cpu().numpy()


def random_direction(x: torch.Tensor, norm: float, seed: int) -> torch.Tensor:
    """A Gaussian direction of the shape of `x`, of length `norm` (drawn from `seed`): the other end of
    a random line from x, as long as the line between two images."""
    generator = torch.Generator().manual_seed(seed)
    r = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return (r * (norm / float(r.norm()))).to(device=x.device, dtype=x.dtype)


def autocorrelation(sequence: np.ndarray, lags: int) -> np.ndarray:
    """The sample autocorrelation of `sequence` at lags 0 … `lags`: Σ (g_t - ḡ)(g_t+k - ḡ) / Σ (g_t - ḡ)²
    (1 at lag 0; near 0 beyond it for white noise)."""
    g = np.asarray(sequence, dtype=float) - np.mean(sequence)
    energy = float(g @ g) or 1.0
    return np.array([float(g[: len(g) - k] @ g[k:]) / energy for k in range(lags + 1)])


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch: int = 256) -> nn.Module:
    """`model` with the running statistics of every BatchNorm set to the mean and variance of its
    inputs over `images` (an initialized network has none yet), left in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    model.train()
    for chunk in images.split(batch):
        model(chunk)
    return model.eval()
