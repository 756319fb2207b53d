"""Weights from files into registry models, torchvision's published ImageNet weights, and the weights
this package ships (trained by this project: `create_model("resnet20", weights="cifar10")`).

Files are read without executing code: safetensors, or `torch.load(weights_only=True)`. What loads:
torchvision state_dicts, timm checkpoints (.pth or .safetensors, wrapped or not, EMA weights first as
timm does), this project's checkpoints (`resnet train`) and safetensors exports (`resnet export`).
Everything is checked before anything is copied, so a file that does not fit leaves the model as it was.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch
from torch import nn

from .. import checkpoint
from ..cache import cache_dir
from ..download import fetch
from ..errors import UsageError
from .base import ClassifierHead

TORCHVISION_URL = "https://download.pytorch.org/models"
MIRROR_ENV = "RESNET_WEIGHTS_URL"  # a folder URL holding torchvision's files under their own names
EXPORT_FORMAT = "resnet.weights"  # the `format` metadata of this project's safetensors exports
HEADS = ("load", "new", "auto")
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".tar", ".ckpt", ".t7")  # a name like these is a path
# The classifier under other libraries' names: timm heads, Cadene's pretrainedmodels, and `linear` of
# the widely used PyTorch CIFAR reproduction (Idelbayev's pytorch_resnet_cifar10).
CLASSIFIER_NAMES = ("fc", "head.fc", "head", "classifier", "last_linear", "linear")
# Wrappers whose prefix every key carries: (Distributed)DataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Where checkpoints keep the state_dict, in timm's order of preference (EMA weights first).
STATE_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
# Other names in published files, as (pattern, replacement): torchvision's DenseNet files predate its
# module names (`denselayer1.norm.1` is now `denselayer1.norm1`); the loss-landscape code of Li et al.
# 2018 (tomgoldstein/loss-landscape) names a block's projection shortcut `shortcut.0/1`.
LEGACY_NAMES = (
    (re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var))$"), r"\1\2"),
    (re.compile(r"^(layer\d+\.\d+)\.shortcut\.([01]\.\w+)$"), r"\1.downsample.\2"),
)
# timm ResNet layers that the model lacks: a key pattern, what it reveals and where it is here.
UNMAPPABLE = (
    (r"^conv1\.\d+\.", "a deep 3-layer 3×3 stem (timm resnet*c/d/e/s/t; here resnet50c, resnet*d, or stem='deep')"),
    (r"\.downsample\.2\.", "average-pool shortcuts (timm resnet*d/e/t; here resnet*d, or avg_down=True)"),
    (r"\.se\.", "squeeze-and-excitation blocks (timm seresnet*, seresnext*; here the same names, or se=True)"),
    (r"^maxpool\.\d+\.", "a convolution in place of the stem max-pool"),
    (r"^stem\.|^stages\.", "the pre-activation layout of timm resnetv2*"),
)


@dataclass(frozen=True)
class Published:
    """One of torchvision's published ImageNet-1k weights: its file name ends in the first hex digits
    of the file's SHA-256; `top1` is torchvision's accuracy (%) on a center 224 crop of the image
    resized to `resize` on its shorter side, normalized by IMAGENET_MEAN and IMAGENET_STD."""

    tag: str
    file: str
    top1: float
    resize: int

    @property
    def url(self) -> str:
        """The file's address: torchvision's, or under the mirror of $RESNET_WEIGHTS_URL."""
        return f"{os.environ.get(MIRROR_ENV, TORCHVISION_URL).rstrip('/')}/{self.file}"


SHIPPED_DIR = Path(__file__).resolve().parent.parent / "assets" / "weights"  # {model}-{tag}.safetensors
SHIPPED_TAGS = ("cifar10",)  # the data sets this package ships trained networks of

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # on 0-255 pixels, as `Normalize` takes them
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _v1(file: str, top1: float, resize: int = 256) -> Published:
    return Published("IMAGENET1K_V1", file, top1, resize)


def _v2(file: str, top1: float) -> Published:
    return Published("IMAGENET1K_V2", file, top1, 232)


# torchvision.models.*_Weights; the last of each model is torchvision's DEFAULT.
PUBLISHED: dict[str, tuple[Published, ...]] = {
    "resnet18": (_v1("resnet18-f37072fd.pth", 69.758),),
    "resnet34": (_v1("resnet34-b627a593.pth", 73.314),),
    "resnet50": (_v1("resnet50-0676ba61.pth", 76.130), _v2("resnet50-11ad3fa6.pth", 80.858)),
    "resnet101": (_v1("resnet101-63fe2227.pth", 77.374), _v2("resnet101-cd907fc2.pth", 81.886)),
    "resnet152": (_v1("resnet152-394f9c45.pth", 78.312), _v2("resnet152-f82ba261.pth", 82.284)),
    "resnext50_32x4d": (_v1("resnext50_32x4d-7cdf4587.pth", 77.618), _v2("resnext50_32x4d-1a0047aa.pth", 81.198)),
    "resnext101_32x8d": (_v1("resnext101_32x8d-8ba56ff5.pth", 79.312), _v2("resnext101_32x8d-110c445d.pth", 82.834)),
    "resnext101_64x4d": (_v1("resnext101_64x4d-173b62eb.pth", 83.246, resize=232),),
    "wide_resnet50_2": (_v1("wide_resnet50_2-95faca4d.pth", 78.468), _v2("wide_resnet50_2-9ba9bcbe.pth", 81.602)),
    "wide_resnet101_2": (_v1("wide_resnet101_2-32ee1156.pth", 78.848), _v2("wide_resnet101_2-d733dc28.pth", 82.510)),
    "densenet121": (_v1("densenet121-a639ec97.pth", 74.434),),
    "densenet161": (_v1("densenet161-8d451a50.pth", 77.138),),
    "densenet169": (_v1("densenet169-b2777c0a.pth", 75.600),),
    "densenet201": (_v1("densenet201-c1103571.pth", 76.896),),
}


@dataclass
class Weights:
    """A state_dict read from `path`, and what the file says of it: for this project's files
    `model_name`, `model_options`, `classes`, `normalize`, `image_size`, `eval_resize`."""

    state: dict[str, torch.Tensor]
    path: Path
    meta: dict = field(default_factory=dict)


# -- published weights --------------------------------------------------------------------------


def published(name: str, tag: str) -> Published:
    """torchvision's weights `tag` of model `name`: "imagenet" or "DEFAULT" (the best), an enum name
    such as "IMAGENET1K_V1", or its full form "ResNet50_Weights.IMAGENET1K_V1"."""
    choices = PUBLISHED.get(name)
    if not choices:
        raise UsageError(f"weights {tag!r}: no such file, and {name} has no published weights")
    key = tag.split(".")[-1].upper()
    if key in ("IMAGENET", "DEFAULT"):
        return choices[-1]
    for p in choices:
        if p.tag == key:
            return p
    names = ", ".join(["imagenet", "DEFAULT", *(p.tag for p in choices)])
    raise UsageError(f"weights {tag!r}: no such file, and no published weights of {name} by that name ({names})")


def download(url: str, folder: Path | None = None) -> Path:
    """The file at `url` in `folder` (default: the cache's weights/), fetched unless a verified copy is
    there. Its name must carry the first hex digits of its SHA-256 (`resnet50-11ad3fa6.pth`): the file
    is kept, under that name, only if they match."""
    name = PurePosixPath(urllib.request.urlparse(url).path).name
    prefix = re.search(r"-([0-9a-f]{6,})\.", name)
    if prefix is None:
        raise UsageError(f"{url}: the file name carries no SHA-256 prefix to verify it by")
    hint = f"; set ${MIRROR_ENV} to a folder URL holding {name}, or pass weights=PATH"
    return fetch(url, (folder or cache_dir() / "weights") / name, "sha256", prefix[1], hint)


def shipped(name: str) -> dict[str, dict]:
    """{tag: what the file says of itself} for the weights of `name` this package ships: the
    metadata of `export.ship` (recipe, data, iterations, test_error, subset_error, commit, ...)."""
    found = {}
    for tag in SHIPPED_TAGS:
        path = SHIPPED_DIR / f"{name}-{tag}.safetensors"
        if path.is_file():
            found[tag] = read_metadata(path)
    return found


def available_weights(name: str) -> dict[str, float]:
    """{tag: top-1 error} of the weights `create_model(name, weights=tag)` loads: the shipped ones
    (test error on their data, as measured when shipped) and torchvision's published ones (ImageNet)."""
    found = {tag: round(meta["test_error"], 5) for tag, meta in shipped(name).items()}
    for p in PUBLISHED.get(name, ()):
        found[p.tag] = round(1 - p.top1 / 100, 5)
    return found


def weights_path(name: str, weights: str | Path, options: dict | None = None) -> Path:
    """The file of `weights` for model `name`: a path, the tag of the weights this package ships
    ("cifar10"), or the name of torchvision's published weights of `name` (downloaded and verified
    into the cache on first use)."""
    path = Path(weights)
    if path.is_file():
        return path
    if isinstance(weights, Path) or len(path.parts) > 1 or path.suffix.lower() in WEIGHT_SUFFIXES:
        raise UsageError(f"{path}: no such weights file")
    if str(weights).lower() in SHIPPED_TAGS:
        tag = str(weights).lower()
        file = SHIPPED_DIR / f"{name}-{tag}.safetensors"
        if not file.is_file():
            have = sorted(p.name.removesuffix(f"-{tag}.safetensors") for p in SHIPPED_DIR.glob(f"*-{tag}.safetensors"))
            raise UsageError(f"{name} has no shipped {tag} weights; shipped: {', '.join(have) or 'none yet'}")
        return file
    p = published(name, str(weights))
    if (options or {}).get("variant", "v1.5") != "v1.5":
        raise UsageError(
            f"torchvision's {name} weights are of variant v1.5 (stride in the 3×3), not {options['variant']}"
        )
    return download(p.url)


# -- reading files ------------------------------------------------------------------------------


def read_weights(path: str | Path) -> Weights:
    """The state_dict in the file at `path`, unwrapped from its checkpoint, without wrapper prefixes,
    under today's names.

    UsageError, naming the file, for a missing, truncated or damaged file, a pickle that would run
    code, or a file that holds no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such weights file")
    if is_safetensors(path):
        state, meta = _read_safetensors(path)
    else:
        obj = checkpoint.safe_load(path)
        if isinstance(obj, dict) and obj.get("format") == checkpoint.FORMAT:
            payload = checkpoint.checked(obj, path)
            state = payload["model"]
            meta = {k: payload[k] for k in ("model_name", "model_options", "classes", "image_size") if k in payload}
            meta["normalize"] = {k: v.tolist() for k, v in payload.get("normalize", {}).items()}
            meta["eval_resize"] = payload.get("eval_resize", 1.0)
        else:
            state, meta = _unwrap(obj, path), {}
    return Weights(_modern_names(state), path, meta)


def is_safetensors(path: Path) -> bool:
    """safetensors files start with the 8-byte length of a JSON header, then the header's `{`."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_safetensors(path: Path, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UsageError(f"{path}: damaged or truncated safetensors file ({str(e).splitlines()[0][:120]})") from None
    if metadata.get("format") != EXPORT_FORMAT:
        return state, {}
    try:
        return state, {k: json.loads(v) for k, v in metadata.items() if k != "format"}
    except json.JSONDecodeError:
        raise UsageError(f"{path}: damaged metadata in a {EXPORT_FORMAT} file") from None


def read_metadata(path: Path) -> dict:
    """What this project's safetensors file says of itself, without reading its tensors."""
    return _read_safetensors(path, tensors=False)[1]


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state_dict of a bare state_dict or of a checkpoint holding one under a key of STATE_KEYS."""
    while isinstance(obj, dict) and not _is_state_dict(obj):
        inner = next((obj[k] for k in STATE_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            keys = ", ".join(map(str, list(obj)[:6]))
            raise UsageError(f"{path}: holds no state_dict (its keys: {keys}; looked for {', '.join(STATE_KEYS)})")
        obj = inner
    if not _is_state_dict(obj):
        raise UsageError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    return obj


def _modern_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` without wrapper prefixes, old names renamed (LEGACY_NAMES)."""
    state = _strip_prefixes(state)
    for pattern, replacement in LEGACY_NAMES:
        state = {pattern.sub(replacement, k): v for k, v in state.items()}
    return state


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped = True
    return state


# -- loading into a model -----------------------------------------------------------------------


def classifier_name(model: nn.Module) -> str | None:
    """The module name of a classifier's final linear layer, as the network names it (`head`: "fc",
    DenseNet's "classifier"); None for a network without one (super-resolution)."""
    return model.head if isinstance(model, ClassifierHead) else None


def head_size(weights: Weights, classifier: str | None) -> int | None:
    """Outputs of the file's classifier (under the model's name `classifier` or another library's),
    None when the file or the model has none."""
    if classifier is None:
        return None
    rows = _renamed_classifier(weights.state, classifier).get(f"{classifier}.weight")
    return rows.shape[0] if rows is not None and rows.ndim == 2 else None


def _renamed_classifier(state: dict, classifier: str | None) -> dict:
    """`state` with another library's classifier (timm's `head.fc`, ...) under the model's name."""
    if classifier is None or f"{classifier}.weight" in state:
        return state
    other = next((n for n in CLASSIFIER_NAMES if f"{n}.weight" in state), None)
    if other is None:
        return state
    names = {f"{other}.{p}": f"{classifier}.{p}" for p in ("weight", "bias")}
    return {names.get(k, k): v for k, v in state.items()}


def load_weights(model: nn.Module, weights: str | Path | Weights, *, head: str = "load") -> list[str]:
    """Copy `weights` (a file, or what `read_weights` returned) into `model`, in place.

    `head` says what becomes of the classifier: "load" copies it (it must fit the model); "new"
    leaves the model's own (fresh) one, so only the backbone is loaded, as fine-tuning wants; "auto"
    loads it when the file has one of the model's size, else leaves the model's. Every other layer
    must fit: a missing, extra or misshapen tensor raises UsageError naming it, before anything is
    copied. Returns the state_dict keys left as they were (the classifier's when not loaded).
    """
    if head not in HEADS:
        raise UsageError(f"unknown head {head!r}; choose one of: {', '.join(HEADS)}")
    if not isinstance(weights, Weights):
        weights = read_weights(weights)
    own = model.state_dict()
    classifier = classifier_name(model)
    state = _renamed_classifier(weights.state, classifier)
    _refuse_unmappable(state, own, weights)
    head_keys = {k for k in own if classifier and k.startswith(f"{classifier}.")}
    file_head = {k for k in state if classifier and k.startswith(f"{classifier}.")}
    fits = file_head == head_keys and all(state[k].shape == own[k].shape for k in head_keys)
    if head == "load" and not fits:
        raise UsageError(
            f"{weights.path}: {_head_mismatch(state, own, classifier)}; head='new' loads the backbone only"
        )
    if head == "new" or not fits:
        state = {k: v for k, v in state.items() if k not in file_head}
    keep = head_keys - set(state)
    missing = [k for k in own if k not in state and k not in keep and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    misshapen = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or misshapen:
        raise UsageError(
            f"{weights.path}: does not fit the model: {_mismatch(state, own, missing, unexpected, misshapen, weights)}"
        )
    model.load_state_dict(state, strict=False)  # every key was checked above; the rest is `keep`
    return sorted(k for k in own if k not in state)


def _refuse_unmappable(state: dict, own: dict, weights: Weights) -> None:
    extra = [k for k in state if k not in own]
    for pattern, what in UNMAPPABLE:
        if any(re.search(pattern, k) for k in extra):
            raise UsageError(f"{weights.path}: these weights are of a network with {what}, which this model has not")


def _head_mismatch(state: dict, own: dict, classifier: str) -> str:
    key = f"{classifier}.weight"
    if key not in state:
        return f"it holds no classifier ({key})"
    return f"its classifier has {state[key].shape[0]} outputs, the model's {own[key].shape[0]}"


def _mismatch(state: dict, own: dict, missing: list, unexpected: list, misshapen: list, weights: Weights) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    for k in misshapen[:2]:
        parts.append(f"{k} is {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model")
    if "model_name" in weights.meta:
        parts.append(f"the file holds {weights.meta['model_name']} {weights.meta.get('model_options') or ''}".strip())
    return "; ".join(parts)
