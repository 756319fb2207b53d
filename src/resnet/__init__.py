"""Residual networks as in *Deep Residual Learning for Image Recognition* (He et al., 2015)."""

from . import train as _training  # noqa: F401  (the subpackage, loaded now: its __init__ imports nothing heavy)
from .errors import RunError, UsageError
from .lazy import exports

# resnet.train is the function (imported on first use below), not the subpackage the import bound to the name
del train  # noqa: F821

__version__ = "0.1.0"

# imported when first used (resnet.lazy): `resnet --version` and `import resnet` stay quick
__getattr__ = exports(
    __name__,
    {
        "Classifier": ".inference",
        "RunResult": ".train.logs",
        "count_macs": ".models",
        "count_parameters": ".models",
        "create_model": ".models",
        "describe": ".models",
        "evaluate": ".inference",
        "export_model": ".export",
        "extract_features": ".features",
        "finetune": ".train.api",
        "list_models": ".models",
        "load": ".inference",
        "load_weights": ".models.weights",
        "train": ".train.api",
    },
)

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
