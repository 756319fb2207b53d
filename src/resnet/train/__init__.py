"""Training: the loop, recipes' schedules, checkpoints, evaluation."""

from .finetune import finetune
from .trainer import RunResult, train

__all__ = ["RunResult", "finetune", "train"]
