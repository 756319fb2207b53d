"""The experiments, each a protocol on the driver (see analysis/driver.py)."""

from .degradation import Degradation
from .mlp import MLPDepth
from .shortcuts import Shortcuts

EXPERIMENTS = (Degradation, Shortcuts, MLPDepth)

__all__ = ["EXPERIMENTS", "Degradation", "MLPDepth", "Shortcuts"]
