"""torch.hub entry points: one per registered model, e.g.

    torch.hub.load("OWNER/resnet", "resnet56")                           # from GitHub
    torch.hub.load("path/to/resnet", "resnet50", source="local", pretrained=True)     # torchvision's ImageNet weights
    torch.hub.load("path/to/resnet", "resnet20", source="local", pretrained=True)     # this package's CIFAR-10 network
    torch.hub.load("path/to/resnet", "resnet20", source="local", weights="runs/r20/best.pt")

Keyword arguments are `resnet.create_model`'s: `num_classes`, `weights` (a file, or weights by name:
"cifar10" for the networks this package ships, "imagenet" for torchvision's) and the model's options;
`pretrained=True` loads the model's trained weights by name: the shipped ones where the package has them,
else torchvision's best ImageNet ones (`resnet models` lists which model has which).
"""

import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "numpy", "PIL", "yaml", "rich", "safetensors"]

_sys.path.insert(0, str(_Path(__file__).resolve().parent / "src"))  # a clone works without installing

from resnet.errors import UsageError as _UsageError  # noqa: E402
from resnet.models import create_model as _create_model  # noqa: E402
from resnet.models import get_spec as _get_spec  # noqa: E402
from resnet.models import list_models as _list_models  # noqa: E402
from resnet.models.weights import SHIPPED_TAGS as _SHIPPED_TAGS  # noqa: E402
from resnet.models.weights import available_weights as _available_weights  # noqa: E402


def _pretrained(name: str) -> str:
    """The weights pretrained=True means for `name`: the shipped ones, else torchvision's best."""
    available = _available_weights(name)
    if not available:
        raise _UsageError(
            f"{name} has no trained weights to load (resnet models lists those that have): pass weights=PATH"
        )
    return next((tag for tag in available if tag in _SHIPPED_TAGS), "imagenet")


def _entry(name: str):
    def entry(pretrained: bool = False, **kwargs):
        if pretrained:
            if kwargs.get("weights") is not None:
                raise _UsageError("pass either pretrained=True or weights=..., not both")
            kwargs["weights"] = _pretrained(name)
        return _create_model(name, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"{_get_spec(name).description}: resnet.create_model({name!r}, num_classes=None, weights=None, **options).\n"
        "pretrained=True loads its trained weights: this package's shipped ones (weights='cifar10') where it has "
        "them, else torchvision's ImageNet ones (weights='imagenet')."
    )
    return entry


for _name in _list_models():
    globals()[_name] = _entry(_name)
