"""Training: the loop, recipes' schedules, checkpoints, evaluation."""

from .api import finetune, train
from .trainer import RunResult

__all__ = ["RunResult", "finetune", "train"]
