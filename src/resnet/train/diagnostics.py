"""Diagnostics of any network on any batch: the spread of layer responses (the paper's Fig. 7) and
the gradient that reaches each layer (why plain nets degrade)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .modes import mode


@dataclass
class LayerValue:
    """One number for one layer: its module name and the value."""

    name: str
    value: float


def conv_bn_pairs(model: nn.Module, kernel_size: int | None = 3) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d]]:
    """(bn name, conv, bn) for every BN that follows a convolution of `kernel_size` (None: any),
    in forward order, pairing `...convN` with `...bnN` (torchvision's names)."""
    modules = dict(model.named_modules())
    pairs = []
    for name, module in modules.items():
        if not isinstance(module, nn.BatchNorm2d):
            continue
        prefix, _, last = name.rpartition(".")
        conv = modules.get(f"{prefix}.{last.replace('bn', 'conv')}" if prefix else last.replace("bn", "conv"))
        if isinstance(conv, nn.Conv2d) and (kernel_size is None or conv.kernel_size == (kernel_size, kernel_size)):
            pairs.append((name, conv, module))
    return pairs


@torch.no_grad()
def layer_responses(model: nn.Module, images: torch.Tensor, kernel_size: int | None = 3) -> list[LayerValue]:
    """Fig. 7: the standard deviation of each 3×3 layer's response, after BN and before the addition
    and the ReLU, over a batch, with the model in eval mode (its learned statistics)."""
    stds: dict[str, float] = {}
    hooks = [
        bn.register_forward_hook(lambda m, i, out, name=name: stds.__setitem__(name, out.float().std().item()))
        for name, _, bn in conv_bn_pairs(model, kernel_size)
    ]
    try:
        with mode(model, training=False):
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return [LayerValue(name, stds[name]) for name, _, _ in conv_bn_pairs(model, kernel_size) if name in stds]


def gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[LayerValue]:
    """The L2 norm of the loss gradient at the weights of every convolution and linear layer, in
    forward order, for one batch in training mode (batch statistics, as during training). The
    model's gradients and BN running statistics are left as they were."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    params = list(model.parameters())
    saved_grads = [p.grad for p in params]
    saved_buffers = [b.clone() for b in model.buffers()]
    try:
        for p in params:
            p.grad = None
        with mode(model, training=True):
            F.cross_entropy(model(images).float(), labels).backward()
        return [LayerValue(n, m.weight.grad.norm().item()) for n, m in layers]
    finally:
        for p, grad in zip(params, saved_grads):
            p.grad = grad
        for buffer, saved in zip(model.buffers(), saved_buffers):
            buffer.copy_(saved)
