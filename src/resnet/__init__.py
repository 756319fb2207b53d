"""Residual networks as in *Deep Residual Learning for Image Recognition* (He et al., 2015)."""

from .errors import RunError, UsageError
from .export import export_model
from .features import extract_features
from .inference import Classifier, evaluate, load
from .models import count_macs, count_parameters, create_model, describe, list_models
from .models.weights import load_weights
from .train import RunResult, finetune, train

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "RunError",
    "RunResult",
    "UsageError",
    "count_macs",
    "count_parameters",
    "create_model",
    "describe",
    "evaluate",
    "finetune",
    "export_model",
    "extract_features",
    "list_models",
    "load",
    "load_weights",
    "train",
]
