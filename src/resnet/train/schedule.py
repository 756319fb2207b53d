"""Learning-rate schedules as functions of the iteration, in fractions of the run, so that a shorter
or longer run keeps the recipe's proportions."""

from __future__ import annotations

import math

from ..config import ScheduleConfig


class LRSchedule:
    """The learning rate at each step of a run of `total` steps starting from `lr`.

    step: `lr × gamma^k` after the k-th milestone. plateau: `lr × gamma^k` after the k-th plateau
    of the evaluation error (§3.4, "divided by 10 when the error plateaus"), driven by
    `observe_eval`. cosine: cosine decay to `final_lr × lr`. onecycle: linear decay to
    `final_lr × lr`. constant. All after an optional linear warm-up. §4.2's warm-up for deep
    CIFAR nets (`warmup_lr` until the training error falls below `warmup_until_error`) is driven
    by `observe(step, train_error)`.
    """

    def __init__(self, cfg: ScheduleConfig, lr: float, total: int, depth: int = 0) -> None:
        self.cfg, self.lr, self.total = cfg, lr, total
        self.warmup_steps = round(cfg.warmup * total) if cfg.warmup < 1 else int(cfg.warmup)
        self.milestones = [round(m * total) for m in cfg.milestones]
        # §4.2: "we use 0.01 to warm up the training until the training error is below 80%"
        self.error_warmup = bool(cfg.warmup_lr) and depth >= cfg.warmup_min_depth
        self.error_warmup_done = not self.error_warmup
        self.plateaus, self.best_eval, self.evals_since_best = 0, math.inf, 0

    def __call__(self, step: int) -> float:
        if not self.error_warmup_done and step < self.cfg.warmup_max_iters:
            return self.cfg.warmup_lr
        lr = self.lr * self._decay(step)
        if step < self.warmup_steps:
            lr *= (step + 1) / self.warmup_steps
        return lr

    def _decay(self, step: int) -> float:
        cfg = self.cfg
        if cfg.name == "step":
            return cfg.gamma ** sum(step >= m for m in self.milestones)
        if cfg.name == "plateau":
            return cfg.gamma**self.plateaus
        if cfg.name == "constant":
            return 1.0
        span = max(1, self.total - self.warmup_steps)
        progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.name == "cosine" else 1 - progress
        return cfg.final_lr + (1 - cfg.final_lr) * shape

    def observe(self, step: int, train_error: float) -> bool:
        """Report the recent training error; True when this ends the §4.2 warm-up."""
        if not self.error_warmup_done and (
            train_error < self.cfg.warmup_until_error or step >= self.cfg.warmup_max_iters
        ):
            self.error_warmup_done = True
            return True
        return False

    def observe_eval(self, error: float) -> bool:
        """Report an evaluation error; True when it completes a plateau (plateau schedule)."""
        if error < self.best_eval:
            self.best_eval, self.evals_since_best = error, 0
            return False
        self.evals_since_best += 1
        if self.cfg.name == "plateau" and self.evals_since_best >= self.cfg.patience:
            self.plateaus, self.evals_since_best = self.plateaus + 1, 0
            return True
        return False

    def state_dict(self) -> dict:
        return {
            "error_warmup_done": self.error_warmup_done,
            "plateaus": self.plateaus,
            "best_eval": self.best_eval,
            "evals_since_best": self.evals_since_best,
        }

    def load_state_dict(self, state: dict) -> None:
        self.error_warmup_done = state["error_warmup_done"]
        self.plateaus, self.best_eval, self.evals_since_best = (
            state["plateaus"],
            state["best_eval"],
            state["evals_since_best"],
        )
