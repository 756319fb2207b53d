"""Transfer learning: start from pre-trained weights with a new classifier, and train all of the
network (full), only the classifier (linear probe: backbone and its batch norms frozen), or the
classifier first and then the backbone from the top down (gradual unfreezing). `resnet.finetune`
(in trainer.py) is the entry point; this module holds its parts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import FinetuneConfig
from ..data.augment import Normalize
from ..models.weights import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Weights,
    classifier_name,
    load_weights,
    read_weights,
    weights_path,
)
from .modes import freeze_batch_norm


@dataclass
class Part:
    """Parameters trained at `lr_scale` × the learning rate, from the fraction `unfreeze_at` of the run."""

    modules: list[nn.Module]
    lr_scale: float
    unfreeze_at: float = 0.0  # 0: from the start; > 1: never

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]


def read_source(cfg: FinetuneConfig, model_name: str, options: dict) -> Weights:
    """The pre-trained weights named by `cfg.source` (a file, or a published name such as "imagenet")."""
    return read_weights(weights_path(model_name, cfg.source, options))


def source_normalize(weights: Weights) -> Normalize:
    """The input normalization the pre-trained network was trained with: this project's files record
    it; other files (torchvision, timm) are ImageNet models."""
    stats = weights.meta.get("normalize")
    if stats:
        return Normalize(torch.tensor(stats["mean"]), torch.tensor(stats["std"]))
    return Normalize(torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1))


def start_from(model: nn.Module, weights: Weights) -> None:
    """Load the backbone of `weights` into `model`, keeping its new classifier."""
    load_weights(model, weights, head="new")


def parts(model: nn.Module, cfg: FinetuneConfig) -> list[Part]:
    """The classifier, and the backbone as one part (full, linear) or as its top-level blocks unfrozen
    one by one from the top at even intervals over the first part of the run (gradual)."""
    head_name = classifier_name(model)
    head = Part([model.get_submodule(head_name)], 1.0)
    blocks = [m for name, m in model.named_children() if name != head_name and any(True for _ in m.parameters())]
    if cfg.mode == "linear":
        return [head, Part(blocks, 0.0, unfreeze_at=2.0)]
    if cfg.mode == "full":
        return [head, Part(blocks, cfg.backbone_lr)]
    n = len(blocks)
    return [head] + [Part([block], cfg.backbone_lr, unfreeze_at=(n - i) / (n + 1)) for i, block in enumerate(blocks)]


def apply_freezing(parts: list[Part], progress: float) -> None:
    """Freeze the parts not yet unfrozen at `progress` (the fraction of the run done): no gradients,
    and their batch norms use (and keep) their running statistics."""
    for part in parts:
        frozen = progress < part.unfreeze_at
        for p in part.parameters():
            p.requires_grad_(not frozen)
        for m in part.modules:
            freeze_batch_norm(m) if frozen else m.train()
