"""The experiments, each a protocol on the driver (see analysis/driver.py)."""

from .degradation import Degradation
from .landscape import Landscape
from .mlp import MLPDepth
from .shortcuts import Shortcuts

EXPERIMENTS = (Degradation, Shortcuts, MLPDepth, Landscape)

__all__ = ["EXPERIMENTS", "Degradation", "Landscape", "MLPDepth", "Shortcuts"]
