"""Training and evaluation modes of a network, set for a while and then restored module by module
(so that frozen batch-norm layers stay frozen)."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def mode(model: nn.Module, training: bool):
    """Put `model` in training or eval mode inside the block; restore every module's own mode after."""
    saved = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, was in saved:
            m.training = was


def freeze_batch_norm(model: nn.Module) -> None:
    """Put every batch-norm layer in eval mode: it normalizes with its running statistics and stops
    updating them, while the rest of the network trains."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
