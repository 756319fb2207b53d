"""An exponential moving average of the weights (Polyak averaging with exponential weights, as
torchvision's `--model-ema` and timm's ModelEmaV3): after every `every`-th step the average moves a
fraction 1 - decay towards the trained network, parameters and batch-norm statistics alike. The run
evaluates, selects and saves the average as its model."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..config import EmaConfig

WARMUP_POWER = 2 / 3  # timm's default: the warm-up's decay reaches 0.999 after 31.6k updates, 0.9999 after 1M


class EMA:
    """The moving average of `model` (a copy of it, on its device), updated by `update`: one foreach
    lerp over the parameters and buffers on the device, the count of updates a Python int, so that an
    update never waits for a GPU (torch's AveragedModel moves its CPU count to the device every update)."""

    def __init__(self, model: nn.Module, cfg: EmaConfig) -> None:
        self.cfg = cfg
        self.module = copy.deepcopy(model)  # the averaged network (what is evaluated and saved)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0  # updates done (the first one copies the network)

    def decay(self, updates: int) -> float:
        """The decay of the update after `updates` earlier ones: `cfg.decay`, or with the warm-up
        1 - (1 + updates)^(-2/3) while that is smaller (an average of the first steps forgets its start)."""
        if not self.cfg.warmup:
            return self.cfg.decay
        return min(self.cfg.decay, 1 - (1 + updates) ** -WARMUP_POWER)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards `model` if `step` (the steps done) is a multiple of `cfg.every`:
        parameters and batch-norm statistics alike; counts (BN's num_batches_tracked) are copied, as timm
        does, not averaged and truncated."""
        if step % self.cfg.every:
            return
        pairs = list(zip(_tensors(self.module), _tensors(model)))
        floats = [(a, c) for a, c in pairs if a.is_floating_point()]
        if self.updates and floats:
            averaged, current = zip(*floats)
            torch._foreach_lerp_(list(averaged), list(current), 1 - self.decay(self.updates))
        for a, c in pairs:
            if not self.updates or not a.is_floating_point():
                a.copy_(c)
        self.updates += 1

    def load(self, weights: dict, updates: int) -> None:
        """Continue from a checkpoint: the averaged network's `weights` after `updates` updates."""
        self.module.load_state_dict(weights)
        self.updates = updates


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]
