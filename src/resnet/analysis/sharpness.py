"""Sharpness of the loss at a network's weights, from Hessian-vector products (Pearlmutter's trick:
the gradient of g·v, where g is the gradient): the top eigenvalue of the Hessian by power iteration
and its trace by Hutchinson's estimator, as PyHessian (Yao et al. 2020) measures them.

from resnet.analysis.sharpness import hessian_trace, top_eigenvalue, training_loss
loss = training_loss(model, images, labels)      # BatchNorm in eval mode, a fixed batch
top = top_eigenvalue(loss, list(model.parameters()), seed=0)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Loss = Callable[[], torch.Tensor]


def training_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Loss:
    """The cross-entropy of `model` on one fixed batch, as a function of its current weights, with
    BatchNorm in eval mode so that the loss is a function of the weights alone."""
    model.eval()
    return lambda: F.cross_entropy(model(images), labels)


def hessian_vector_product(loss: Loss, params: list[torch.Tensor], v: list[torch.Tensor]) -> list[torch.Tensor]:
    """H·v, H the Hessian of `loss()` with respect to `params`, `v` one tensor per parameter."""
    grads = torch.autograd.grad(loss(), params, create_graph=True)
    return list(torch.autograd.grad(grads, params, grad_outputs=v))


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b)))


def top_eigenvalue(loss: Loss, params: list[torch.Tensor], iters: int = 100, tol: float = 1e-3, seed: int = 0) -> float:
    """The eigenvalue of largest magnitude of the Hessian of `loss()` (the top one at a minimum, where
    the Hessian is nearly positive semi-definite), by power iteration from a Gaussian vector of `seed`:
    stops when the Rayleigh quotient changes by less than `tol` (relative), or after `iters` products."""
    generator = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=generator).to(p) for p in params]
    eigenvalue = None
    for _ in range(iters):
        norm = _dot(v, v) ** 0.5
        v = [x / norm for x in v]
        hv = hessian_vector_product(loss, params, v)
        new = _dot(v, hv)
        if eigenvalue is not None and abs(new - eigenvalue) <= tol * (abs(eigenvalue) + 1e-12):
            return new
        eigenvalue, v = new, [x.detach() for x in hv]
    return eigenvalue


def hessian_trace(loss: Loss, params: list[torch.Tensor], samples: int = 100, seed: int = 0) -> float:
    """Hutchinson's estimate of the trace of the Hessian of `loss()`: the mean of v·Hv over `samples`
    Rademacher vectors v (entries ±1) drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(samples):
        v = [(torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(p) for p in params]
        total += _dot(v, hessian_vector_product(loss, params, v))
    return total / samples
