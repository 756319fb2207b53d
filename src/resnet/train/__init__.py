"""Training: the loop, recipes' schedules, checkpoints, evaluation."""

from .trainer import RunResult, finetune, train

__all__ = ["RunResult", "finetune", "train"]
