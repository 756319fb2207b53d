"""Networks, reached by name through the registry: `create_model("resnet56")`."""

from . import resnet  # noqa: F401  (registers the paper's networks)

from . import preact, resnext, wide, tricks, senet, densenet  # noqa: F401  # isort: skip  (the families around ResNet, in this order)
from . import mlp  # noqa: F401  # isort: skip  (residual MLPs for feature vectors)
from . import resnet9  # noqa: F401  # isort: skip  (ResNet-9 of the CIFAR-10 speed records)
from . import superres  # noqa: F401  # isort: skip  (vdsr and edsr_baseline; their training is resnet.superres)
from .complexity import count_macs, count_parameters, describe, input_shape
from .registry import ModelSpec, create_model, families, get_spec, list_models

__all__ = [
    "ModelSpec",
    "count_macs",
    "count_parameters",
    "create_model",
    "describe",
    "families",
    "get_spec",
    "input_shape",
    "list_models",
]
