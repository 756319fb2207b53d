"""Transfer learning: start from pre-trained weights with a new classifier, and train all of the
network (full), only the classifier (linear probe: backbone and its batch norms frozen), or the
classifier first and then the backbone from the top down (gradual unfreezing). `resnet.finetune`
(in api.py) is the entry point; this module gives the loop what it trains as data: parameter groups
with their scales of the learning rate, and the parts frozen until a step."""

from __future__ import annotations

import math
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
    """Modules frozen before step `unfreeze_at` (math.inf: for the whole run)."""

    modules: list[nn.Module]
    unfreeze_at: float


def read_pretrained(cfg: FinetuneConfig, model_name: str, options: dict) -> Weights:
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


def parts(model: nn.Module, cfg: FinetuneConfig, total: int) -> tuple[list[dict], list[Part]]:
    """What a run of `total` steps trains: the parameter groups of `model`, each with its `lr_scale` (of
    the learning rate), and the parts frozen until a step. Without pre-trained weights: one group at
    scale 1, nothing frozen. Fine-tuning: the classifier at scale 1, and the backbone at `backbone_lr`
    as one group (full), frozen (linear), or as its top-level blocks unfrozen one by one from the top
    at even intervals over the first part of the run (gradual)."""
    if not cfg.source:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}], []
    head_name = classifier_name(model)
    blocks = [m for name, m in model.named_children() if name != head_name and any(True for _ in m.parameters())]
    if cfg.mode == "linear":
        backbone = [(blocks, 0.0, math.inf)]  # (modules, lr_scale, the fraction of the run they are frozen for)
    elif cfg.mode == "full":
        backbone = [(blocks, cfg.backbone_lr, 0.0)]
    else:
        n = len(blocks)
        backbone = [([block], cfg.backbone_lr, (n - i) / (n + 1)) for i, block in enumerate(blocks)]
    head = [model.get_submodule(head_name)]
    groups = [{"params": _parameters(head), "lr_scale": 1.0}]
    groups += [{"params": _parameters(modules), "lr_scale": scale} for modules, scale, _ in backbone]
    steps = unfreeze_steps([fraction for *_, fraction in backbone], total)
    return groups, [Part(modules, step) for (modules, *_), step in zip(backbone, steps) if step > 0]


def unfreeze_steps(fractions: list[float], total: int) -> list[float]:
    """The step at which each part frozen for the fraction `f` of a run of `total` steps is unfrozen
    (0: never frozen; math.inf: never unfrozen, as for f > 1). The parts are unfrozen at the steps
    round(f × total), each part at the first of them that reaches its own fraction (step / total ≥ f):
    a step rounded down short of its fraction leaves its part to the next."""
    steps = sorted({round(f * total) for f in fractions if 0 < f <= 1})
    return [0 if f <= 0 else next((s for s in steps if s / total >= f), math.inf) for f in fractions]


def apply_freezing(parts: list[Part], step: int) -> None:
    """Freeze the parts not yet unfrozen at `step`: no gradients, and their batch norms use (and keep)
    their running statistics; unfreeze the others."""
    for part in parts:
        frozen = step < part.unfreeze_at
        for p in _parameters(part.modules):
            p.requires_grad_(not frozen)
        for m in part.modules:
            freeze_batch_norm(m) if frozen else m.train()


def _parameters(modules: list[nn.Module]) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]
