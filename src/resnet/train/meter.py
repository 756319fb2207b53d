"""What the loop measures between evaluations: the training loss and error, and the rule for a
non-finite loss. Both keep their per-step state on the training device and are read by the host
every few steps, so that GPU steps do not wait for it."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import RunError


class Meter:
    """The running training loss and error since the last `reset`: summed on the device by `add`,
    moved to host totals by `read` (which returns the part since the previous read)."""

    def __init__(self, device: torch.device) -> None:
        self._sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss × images, wrong
        self._count = 0  # on the host: a tensor made from it would be a copy that waits for the GPU
        self.loss, self.wrong, self.count = 0.0, 0.0, 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        wrong = (logits.detach().argmax(1) != labels).sum()
        self._sums += torch.stack([loss.detach().double() * len(labels), wrong.double()])
        self._count += len(labels)

    def read(self) -> tuple[float, float, int]:
        """(loss sum, wrong, images) since the previous read, added to the totals."""
        (loss, wrong), count = self._sums.tolist(), self._count
        self._sums.zero_()
        self._count = 0
        self.loss, self.wrong, self.count = self.loss + loss, self.wrong + wrong, self.count + count
        return loss, wrong, count

    @property
    def error(self) -> float:
        return self.wrong / max(1, self.count)

    @property
    def mean_loss(self) -> float:
        return self.loss / max(1, self.count)

    def reset(self) -> None:
        self.loss, self.wrong, self.count = 0.0, 0.0, 0

    def state_dict(self) -> dict:  # the checkpoint's "interval"
        return {"loss": self.loss, "wrong": self.wrong, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.loss, self.wrong, self.count = state["loss"], state["wrong"], int(state["count"])


class NonFiniteGuard:
    """What a NaN or infinite loss does (`nonfinite`). "stop": the first such step is noted on the
    device and `check` raises at the next read, naming it. "skip": the step is dropped (a host sync
    per step) and the batch-norm statistics its forward pass changed are put back."""

    def __init__(self, rule: str, model: nn.Module, device: torch.device) -> None:
        self.rule, self.model = rule, model
        self.skipped = 0
        self._first = torch.full((), -1, dtype=torch.int64, device=device)
        self._saved: list[torch.Tensor] = []

    def before_forward(self) -> None:
        if self.rule == "skip":
            self._saved = [b.clone() for b in self.model.buffers()]

    def allows(self, loss: torch.Tensor, step: int) -> bool:
        """Whether the step at index `step` may go on to its backward pass and update."""
        if self.rule == "skip":
            if torch.isfinite(loss):
                return True
            self.skipped += 1
            for buffer, saved in zip(self.model.buffers(), self._saved):
                buffer.copy_(saved)
            return False
        self._first = torch.where((self._first < 0) & ~torch.isfinite(loss.detach()), step + 1, self._first)
        return True

    def check(self, last_checkpoint) -> None:
        bad = int(self._first)
        if bad >= 0:
            raise RunError(
                f"the loss is not finite at step {bad}; stopped (the last good checkpoint is "
                f"{last_checkpoint}; --set nonfinite=skip skips such steps)"
            )
