"""The experiments, each a protocol on the driver (see analysis/driver.py)."""

from .degradation import Degradation
from .lesion import Lesion
from .mlp import MLPDepth
from .shortcuts import Shortcuts

EXPERIMENTS = (Degradation, Shortcuts, MLPDepth, Lesion)

__all__ = ["EXPERIMENTS", "Degradation", "Lesion", "MLPDepth", "Shortcuts"]
