"""torch.hub entry points: one per registered model, e.g.

    torch.hub.load("OWNER/resnet", "resnet56")                           # from GitHub
    torch.hub.load("path/to/resnet", "resnet50", source="local", pretrained=True)
    torch.hub.load("path/to/resnet", "resnet20", source="local", weights="runs/r20/best.pt")

Keyword arguments are `resnet.create_model`'s: `num_classes`, `weights` (a file or the name of
torchvision's published weights) and the model's options; `pretrained=True` means weights="imagenet".
"""

import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "numpy", "PIL", "yaml", "rich", "safetensors"]

_sys.path.insert(0, str(_Path(__file__).resolve().parent / "src"))  # a clone works without installing

from resnet.errors import UsageError as _UsageError  # noqa: E402
from resnet.models import create_model as _create_model  # noqa: E402
from resnet.models import get_spec as _get_spec  # noqa: E402
from resnet.models import list_models as _list_models  # noqa: E402


def _entry(name: str):
    def entry(pretrained: bool = False, **kwargs):
        if pretrained:
            if kwargs.get("weights") not in (None, "imagenet"):
                raise _UsageError("pass either pretrained=True or weights=..., not both")
            kwargs["weights"] = "imagenet"
        return _create_model(name, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"{_get_spec(name).description}: resnet.create_model({name!r}, num_classes=None, weights=None, **options).\n"
        "pretrained=True loads torchvision's published ImageNet weights (weights='imagenet')."
    )
    return entry


for _name in _list_models():
    globals()[_name] = _entry(_name)
