"""An exponential moving average of the weights (Polyak averaging with exponential weights, as
torchvision's `--model-ema` and timm's ModelEmaV3): after every `every`-th step the average moves a
fraction 1 - decay towards the trained network, parameters and batch-norm statistics alike. The run
evaluates, selects and saves the average as its model."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..config import EmaConfig

WARMUP_POWER = 2 / 3  # timm's default: the warm-up's decay reaches 0.999 after 31.6k updates, 0.9999 after 1M


class EMA:
    """The moving average of `model` (a copy of it, on its device), updated by `update`."""

    def __init__(self, model: nn.Module, cfg: EmaConfig) -> None:
        self.cfg = cfg
        # torch's AveragedModel: its first update copies the network, later ones call _average
        self.averaged = AveragedModel(model, multi_avg_fn=self._average, use_buffers=True)

    @property
    def module(self) -> nn.Module:
        """The averaged network (what is evaluated and saved)."""
        return self.averaged.module

    @property
    def updates(self) -> int:
        """Updates done (the first one copied the network)."""
        return int(self.averaged.n_averaged)  # kept on the CPU: reading it never waits for a GPU

    def decay(self, updates: int) -> float:
        """The decay of the update after `updates` earlier ones: `cfg.decay`, or with the warm-up
        1 - (1 + updates)^(-2/3) while that is smaller (an average of the first steps forgets its start)."""
        if not self.cfg.warmup:
            return self.cfg.decay
        return min(self.cfg.decay, 1 - (1 + updates) ** -WARMUP_POWER)

    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards `model` if `step` (the steps done) is a multiple of `cfg.every`."""
        if step % self.cfg.every == 0:
            self.averaged.update_parameters(model)

    @torch.no_grad()
    def _average(self, averaged: list[torch.Tensor], current: list[torch.Tensor], _) -> None:
        if averaged[0].is_floating_point():
            get_ema_multi_avg_fn(self.decay(self.updates))(averaged, current, None)
        else:  # counts (BN's num_batches_tracked) are copied, as timm does, not averaged and truncated
            for a, c in zip(averaged, current):
                a.copy_(c)

    def load(self, weights: dict, updates: int) -> None:
        """Continue from a checkpoint: the averaged network's `weights` after `updates` updates."""
        self.module.load_state_dict(weights)
        self.averaged.n_averaged.fill_(updates)
