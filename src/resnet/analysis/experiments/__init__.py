"""The experiments, each a protocol on the driver (see analysis/driver.py)."""

from .degradation import Degradation
from .gradients import Gradients
from .landscape import Landscape
from .lesion import Lesion
from .mlp import MLPDepth
from .shortcuts import Shortcuts

EXPERIMENTS = (Degradation, Shortcuts, MLPDepth, Lesion, Landscape, Gradients)

__all__ = ["EXPERIMENTS", "Degradation", "Gradients", "Landscape", "Lesion", "MLPDepth", "Shortcuts"]
