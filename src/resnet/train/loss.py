"""The training loss of a batch's logits and targets: labels (N,), or class probabilities (N, K) from
mixup or cutmix. Cross-entropy (the paper's) or binary cross-entropy (Wightman et al. 2021), with
label smoothing. Evaluation reports the cross-entropy of the softmax whatever the training loss."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ..config import TrainConfig


def soft_targets(target: torch.Tensor, classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Class probabilities (N, classes) of labels or of probabilities, smoothed: (1 - ε) t + ε / K, as
    F.cross_entropy's label_smoothing (and timm's on/off values, applied before or after mixing alike)."""
    t = F.one_hot(target, classes).float() if target.ndim == 1 else target.float()
    return t * (1 - smoothing) + smoothing / classes


def binary_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0, threshold: float = 0.0
) -> torch.Tensor:
    """Each class a binary problem (sigmoid, not softmax): the losses summed over the classes and
    averaged over the batch, so that their scale is the cross-entropy's (timm's sum_classes; its
    default also averages over the classes, 1/K of this). `threshold` > 0: targets above it become 1,
    the others 0 (timm's target_threshold)."""
    t = soft_targets(target, logits.shape[1], smoothing)
    if threshold:
        t = (t > threshold).float()
    return F.binary_cross_entropy_with_logits(logits, t, reduction="none").sum(1).mean()


def training_loss(cfg: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """loss(logits, target) of `cfg.loss`, with `cfg.label_smoothing` (and `cfg.bce_threshold`)."""
    if cfg.loss == "bce":
        return partial(binary_cross_entropy, smoothing=cfg.label_smoothing, threshold=cfg.bce_threshold)
    return partial(F.cross_entropy, label_smoothing=cfg.label_smoothing)
