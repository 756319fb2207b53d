"""Size and cost of a network: parameters and multiply-adds, counted on the meta device."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..cache import cache_dir
from .registry import create_model, get_spec


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one input of `input_shape` (e.g. (3, 224, 224)):
    convolutions, linear layers and matrix products, as torch.utils.flop_counter counts them, / 2."""
    device = next(model.parameters()).device
    x = torch.empty(1, *input_shape, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad(), _skipped(model, UNCOUNTED):
        model.eval()(x)
    return counter.get_total_flops() // 2


# layers that keep their input's shape and do none of the operations counted: passed over while counting
# (on the meta device, their operations are the slow part of it: 4 s of ResNet-1202's 5)
UNCOUNTED = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.ReLU, nn.Dropout, nn.Identity)


@contextmanager
def _skipped(model: nn.Module, kinds: tuple[type, ...]):
    """Within it, every layer of `model` of one of `kinds` returns its input."""
    layers = [m for m in model.modules() if isinstance(m, kinds)]
    for m in layers:
        m.forward = _identity
    try:
        yield
    finally:
        for m in layers:
            del m.forward


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def input_shape(name: str, input_size: int | None = None, **options) -> tuple[int, ...]:
    """The shape of one input of model `name`: (C, S, S) for images, the spec's shape otherwise."""
    spec = get_spec(name)
    if spec.input_shape is not None:
        return (options["in_features"],) if "in_features" in options else spec.input_shape
    size = input_size or spec.input_size
    return (options.get("in_channels", 3), size, size)


def describe(name: str, input_size: int | None = None, **options) -> dict:
    """A row of `resnet models`: family, layers, shortcut, parameters, multiply-adds, input size.

    The model is built on the meta device, so even ResNet-1202 costs no memory or compute; rows are
    cached on disk, keyed by the model code and the torch version.
    """
    key = json.dumps([name, input_size, options, _code_version(), torch.__version__], sort_keys=True, default=str)
    path = cache_dir() / "models" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    row = _describe(name, input_size, **options)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(row))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next call the counting
    return row


@lru_cache(maxsize=1)
def _code_version() -> str:
    """A digest of the model code: a changed network is counted again."""
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()


def _describe(name: str, input_size: int | None = None, **options) -> dict:
    spec = get_spec(name)
    shape = input_shape(name, input_size, **options)
    with torch.device("meta"):
        model = create_model(name, **options)
    return {
        "name": name,
        "family": spec.family,
        "layers": spec.depth_with(options),
        "shortcut": options.get("shortcut", spec.shortcut),
        "params": count_parameters(model),
        "macs": count_macs(model, shape),
        "input_size": shape[-1],
        "input_shape": list(shape),
        "num_classes": spec.num_classes,
        "description": spec.description,
    }
