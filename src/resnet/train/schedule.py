"""Learning-rate schedules as functions of the iteration, in fractions of the run, so that a shorter
or longer run keeps the recipe's proportions; and how often a run evaluates."""

from __future__ import annotations

import math

from ..config import LogConfig, ScheduleConfig

EVAL_COST = 1 / 3  # an evaluated image costs about a third of a trained one (forward, no backward)


class LRSchedule:
    """The learning rate at each step of a run of `total` steps peaking at `peak_lr`, and the run's
    best evaluation error.

    step: `peak_lr × gamma^k` after the k-th milestone. plateau: `peak_lr × gamma^k` after the k-th
    plateau of the evaluation error (§3.4, "divided by 10 when the error plateaus"), driven by
    `observe_eval`. cosine: cosine decay to `final_lr × peak_lr`. onecycle: linear decay to
    `final_lr × peak_lr`. constant. All after an optional linear warm-up. §4.2's warm-up for deep
    CIFAR nets (`warmup_lr` until the training error falls below `warmup_until_error`) is driven
    by `observe(step, train_error)`.
    """

    def __init__(self, cfg: ScheduleConfig, peak_lr: float, total: int, depth: int = 0) -> None:
        self.cfg, self.peak_lr, self.total = cfg, peak_lr, total
        self.warmup_steps = round(cfg.warmup * total) if cfg.warmup < 1 else int(cfg.warmup)
        self.milestones = [round(m * total) for m in cfg.milestones]
        # §4.2: "we use 0.01 to warm up the training until the training error is below 80%"
        error_warmup = bool(cfg.warmup_lr) and depth >= cfg.warmup_min_depth
        self.error_warmup_end = None if error_warmup else 0  # the step it ended at (None: not yet)
        self.plateaus, self.best_eval, self.evals_since_best = 0, math.inf, 0

    def __call__(self, step: int) -> float:
        warming = self.error_warmup_end is None or step < self.error_warmup_end
        if warming and step < self.cfg.warmup_max_iters:
            return self.cfg.warmup_lr
        lr = self.peak_lr * self._decay(step)
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
        """Report the recent training error before `step`; True when this ends the §4.2 warm-up."""
        if self.error_warmup_end is None and (
            train_error < self.cfg.warmup_until_error or step >= self.cfg.warmup_max_iters
        ):
            self.error_warmup_end = step
            return True
        return False

    def observe_eval(self, error: float) -> tuple[bool, bool]:
        """Report an evaluation error: (whether it is the best so far, whether it completes a plateau
        of the plateau schedule)."""
        if error < self.best_eval:
            self.best_eval, self.evals_since_best = error, 0
            return True, False
        self.evals_since_best += 1
        if self.cfg.name == "plateau" and self.evals_since_best >= self.cfg.patience:
            self.plateaus, self.evals_since_best = self.plateaus + 1, 0
            return False, True
        return False, False

    def state_dict(self) -> dict:
        return {
            "error_warmup_done": self.error_warmup_end is not None,
            "plateaus": self.plateaus,
            "best_eval": self.best_eval,
            "evals_since_best": self.evals_since_best,
        }

    def load_state_dict(self, state: dict) -> None:
        # the step the warm-up ended at is not kept: a resumed run asks only for the steps after its own
        self.error_warmup_end = 0 if state["error_warmup_done"] else None
        self.plateaus, self.best_eval, self.evals_since_best = (
            state["plateaus"],
            state["best_eval"],
            state["evals_since_best"],
        )


def eval_interval(log: LogConfig, total: int, batch_size: int, eval_images: int) -> int:
    """Iterations between evaluations of a run of `total` iterations of `batch_size` images, evaluating
    `eval_images` each time: `log.every`, else `log.evals` spread over the run, stretched so that
    evaluating stays under `log.eval_share` of the run's work (the paper's every 1,000 iterations of
    64,000 is 2.6%; `--iters 200` on CIFAR-10 evaluates once, at the end)."""
    if log.every:
        return log.every
    least = EVAL_COST * eval_images * (1 - log.eval_share) / (log.eval_share * batch_size)
    return max(1, total // log.evals, math.ceil(least))


def evaluates(step: int, every: int, total: int) -> bool:
    """Whether a run of `total` iterations evaluating every `every` evaluates after `step`: at every
    interval and at the end, but not twice in the last half interval."""
    return step == total or (step % every == 0 and total - step >= every / 2)


def evaluations(after: int, end: int, every: int, total: int) -> int:
    """How many of the steps after `after` up to `end` evaluate (`evaluates`), counted, not walked."""
    last = min(end, total - math.ceil(every / 2))  # the last interval's step that evaluates
    return max(0, last // every - after // every) + (end == total > after)
