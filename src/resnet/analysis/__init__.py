"""Evidence: the paper's figures and tables, and diagnostics reusable on any model and batch.

from resnet.analysis import layer_responses, gradient_norms
stds = layer_responses(model, images)           # Fig. 7, per 3×3 layer
norms = gradient_norms(model, images, labels)   # per conv/linear layer
"""

from ..train.diagnostics import LayerValue, conv_bn_pairs, gradient_norms, layer_responses
from .reproduce import degradation, landscape, mlp_depth, shattered_gradients, shortcuts

__all__ = [
    "LayerValue",
    "conv_bn_pairs",
    "degradation",
    "gradient_norms",
    "landscape",
    "layer_responses",
    "mlp_depth",
    "shattered_gradients",
    "shortcuts",
]
