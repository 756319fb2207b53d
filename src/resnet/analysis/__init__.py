"""Evidence: the paper's figures and tables, and diagnostics reusable on any model and batch.

from resnet.analysis import layer_responses, gradient_norms
stds = layer_responses(model, images)           # Fig. 7, per 3×3 layer
norms = gradient_norms(model, images, labels)   # per conv/linear layer
"""

from ..lazy import exports

__getattr__ = exports(
    __name__,
    {
        "LayerValue": "..train.diagnostics",
        "conv_bn_pairs": "..train.diagnostics",
        "gradient_norms": "..train.diagnostics",
        "layer_responses": "..train.diagnostics",
        "degradation": ".reproduce",
        "landscape": ".reproduce",
        "lesion": ".reproduce",
        "mlp_depth": ".reproduce",
        "shattered_gradients": ".reproduce",
        "shortcuts": ".reproduce",
    },
)

__all__ = [
    "LayerValue",
    "conv_bn_pairs",
    "degradation",
    "gradient_norms",
    "landscape",
    "layer_responses",
    "lesion",
    "mlp_depth",
    "shattered_gradients",
    "shortcuts",
]
