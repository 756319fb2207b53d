"""Residual networks as in *Deep Residual Learning for Image Recognition* (He et al., 2015)."""

from .errors import UsageError
from .inference import Classifier, evaluate, load
from .models import count_macs, count_parameters, create_model, describe, list_models
from .train import RunResult, train

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "RunResult",
    "UsageError",
    "count_macs",
    "count_parameters",
    "create_model",
    "describe",
    "evaluate",
    "list_models",
    "load",
    "train",
]
