"""Training: the loop, recipes' schedules, checkpoints, evaluation."""

from .trainer import RunResult, train

__all__ = ["RunResult", "train"]
