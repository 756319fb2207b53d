"""Evidence: the paper's figures and tables, and diagnostics reusable on any model and batch.

from resnet.analysis import layer_responses, gradient_norms
stds = layer_responses(model, images)           # Fig. 7, per 3×3 layer
norms = gradient_norms(model, images, labels)   # per conv/linear layer
"""

from .diagnostics import LayerValue, conv_bn_pairs, gradient_norms, layer_responses

__all__ = ["LayerValue", "conv_bn_pairs", "degradation", "gradient_norms", "layer_responses", "mlp_depth", "shortcuts"]


def __getattr__(name: str):
    # The reproductions train models; imported on first use, since the trainer itself uses this package.
    if name in ("degradation", "shortcuts", "mlp_depth"):
        from . import reproduce

        return getattr(reproduce, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
