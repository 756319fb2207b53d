"""Residual networks as in *Deep Residual Learning for Image Recognition* (He et al., 2015)."""

from .errors import UsageError
from .models import count_macs, count_parameters, create_model, describe, list_models

__version__ = "0.1.0"

__all__ = ["UsageError", "count_macs", "count_parameters", "create_model", "describe", "list_models"]
