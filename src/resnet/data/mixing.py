"""Mixup and cutmix: a training batch's images blended and its labels turned into class probabilities.
The training loop applies `Mixing` to the batches of either loader."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DataConfig
from .augment import cutmix_box
from .seeds import MIX, derive_seed


class Mixing:
    """Mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019) of training batches, as timm's Mixup with
    mode "batch": a share `mix_prob` of the batches is mixed, each by one of them (cutmix with
    probability `switch_prob` when both are on), with one λ ~ Beta(α, α) for the batch. Each image is
    mixed with its neighbour in the shuffled batch (0↔1, 2↔3, …), so that a process's slice of even
    size mixes as the whole batch would. Cutmix pastes the neighbour's box (`cutmix_box`) and takes
    λ = the share of the image left uncovered (timm's correct_lam). The draws are a function of (seed,
    step): a resumed run mixes as it would have, and every process of a distributed run alike."""

    def __init__(self, cfg: DataConfig, classes: int, seed: int) -> None:
        self.mixup, self.cutmix, self.prob, self.switch = cfg.mixup, cfg.cutmix, cfg.mix_prob, cfg.switch_prob
        self.classes, self.seed = classes, seed

    def draw(self, step: int, height: int, width: int) -> tuple[str, float, tuple[int, int, int, int] | None]:
        """(kind, λ, box) of `step`'s batch: kind "none", "mixup" or "cutmix"; cutmix's box (top,
        bottom, left, right) in images of height × width."""
        if not (self.mixup or self.cutmix):
            return "none", 1.0, None
        rng = np.random.default_rng(derive_seed(self.seed, MIX, step))  # NumPy's: torch has no seeded Beta sampler
        if rng.random() >= self.prob:
            return "none", 1.0, None
        cut = self.cutmix > 0 and (self.mixup == 0 or rng.random() < self.switch)
        lam = float(rng.beta(*[self.cutmix if cut else self.mixup] * 2))
        if not cut:
            return "mixup", lam, None
        top, bottom, left, right = box = cutmix_box(height, width, lam, rng)
        return "cutmix", 1 - (bottom - top) * (right - left) / (height * width), box

    def __call__(self, x: torch.Tensor, labels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch (x, labels) of `step` mixed: images and class probabilities (N, classes); an
        unmixed batch keeps its labels."""
        kind, lam, box = self.draw(step, *x.shape[-2:])
        if kind == "none":
            return x, labels
        n = len(x)
        partner = (torch.arange(n, device=x.device) ^ 1).clamp_(max=n - 1)  # an odd batch's last: itself
        if kind == "mixup":
            x = torch.lerp(x[partner], x, lam)  # λ x + (1 - λ) x[partner]
        else:
            top, bottom, left, right = box
            x = x.clone()
            x[:, :, top:bottom, left:right] = x[partner, :, top:bottom, left:right]
        targets = F.one_hot(labels, self.classes).float()
        return x, torch.lerp(targets[partner], targets, lam)
