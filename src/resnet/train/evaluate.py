"""Evaluation of a classifier over batches: loss, top-1 and top-5 error, per-class accuracy and the
confusion matrix, with optional test-time augmentation (flip, 10-crop, multi-scale)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from .modes import mode

TTA = ("none", "flip", "10crop", "multiscale")


@torch.no_grad()
def evaluate_batches(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    tta: str = "none",
    autocast: AbstractContextManager | None = None,
    reduce=None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict:
    """Run `model` in eval mode over `batches` and return the metrics.

    With tta="flip" the probabilities of each image and its mirror image are averaged; with "10crop"
    the batches are (10, N, C, H, W) views whose probabilities are averaged; with "multiscale" the
    batches are lists of (N, C, H, W) views of any sizes (§3.4's fully convolutional testing: the
    whole image at several scales), whose probabilities and their mirror images' are averaged. `reduce` (distributed
    runs) sums a tensor over processes. `forward` computes the logits instead of `model` (e.g. an
    `resnet.optimize.for_inference` engine of it). Returns loss, top1_error, top5_error, count, per_class
    accuracy and the confusion matrix (rows: true class, columns: predicted).
    """
    with mode(model, training=False):
        return _evaluate(model, forward or model, batches, num_classes, tta, autocast, reduce)


def split_metrics(
    model: nn.Module,
    loaders: dict,
    num_classes: int,
    autocast: AbstractContextManager | None = None,
    reduce=None,
    raw: nn.Module | None = None,
) -> dict:
    """The columns of a metrics row for each split of `loaders` (name: loader): `{split}_loss`,
    `{split}_error` and `{split}_top5_error` of `model`, and with `raw` (the trained weights that
    `model` averages) `{split}_raw_error` beside them: what the average gains."""
    row = {}
    for split, loader in loaders.items():
        metrics = evaluate_batches(model, loader.eval_batches(), num_classes, autocast=autocast, reduce=reduce)
        row[f"{split}_loss"], row[f"{split}_error"] = metrics["loss"], metrics["top1_error"]
        row[f"{split}_top5_error"] = metrics["top5_error"]
        if raw is not None:
            raw_metrics = evaluate_batches(raw, loader.eval_batches(), num_classes, autocast=autocast, reduce=reduce)
            row[f"{split}_raw_error"] = raw_metrics["top1_error"]
    return row


def _evaluate(model, forward, batches, num_classes, tta, autocast, reduce) -> dict:
    device = next(model.parameters()).device
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, top-5 correct, count
    k = min(5, num_classes)
    for x, y in batches:
        with autocast or nullcontext():
            probs = _probabilities(forward, x, tta)
        sums[0] += F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum").double()
        sums[1] += (probs.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum()
        sums[2] += len(y)
        # not bincount: on CUDA it reads the largest index back to the host, a wait per batch
        cells = (y * num_classes + probs.argmax(1),)
        confusion.view(-1).index_put_(cells, torch.ones_like(y, dtype=confusion.dtype), accumulate=True)
    if reduce is not None:
        reduce(confusion)
        reduce(sums)
    count = int(sums[2].item())
    correct = confusion.diag().sum().item()
    per_class = confusion.diag().double() / confusion.sum(1).clamp_min(1)
    return {
        "loss": sums[0].item() / max(count, 1),
        "top1_error": 1 - correct / max(count, 1),
        "top5_error": 1 - sums[1].item() / max(count, 1),
        "count": count,
        "per_class_accuracy": per_class.tolist(),
        "confusion": confusion.cpu().tolist(),
    }


def _probabilities(forward, x: torch.Tensor | list[torch.Tensor], tta: str) -> torch.Tensor:
    if tta == "multiscale":  # views of different sizes: a forward pass each; flips as in VGG's dense testing
        views = [v for scale in x for v in (scale, scale.flip(3))]
        return torch.stack([forward(v).float().softmax(1) for v in views]).mean(0)
    if tta == "10crop":
        views = x  # (10, N, C, H, W)
    elif tta == "flip":
        views = torch.stack([x, x.flip(3)])
    else:
        views = x[None]
    n = views.shape[1]
    logits = forward(views.flatten(0, 1)).float()
    return logits.softmax(1).view(len(views), n, -1).mean(0)
