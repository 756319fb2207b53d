"""The model registry: every network is reached by name through `create_model`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from torch import nn

from ..errors import UsageError, did_you_mean
from .weights import classifier_name, head_size, load_weights, read_weights, weights_path


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of a model before building it."""

    name: str
    build: Callable[..., nn.Module]
    family: str
    depth: int  # weight layers with the default options (the paper's count: projections not counted)
    input_size: int  # images: the side of the square input the model is made for
    num_classes: int | None  # the default number of classes; None: not a classifier
    description: str = ""
    options: dict = field(default_factory=dict)  # option name -> default, what users may set
    input_shape: tuple[int, ...] | None = None  # non-image inputs: the shape of one input, e.g. (64,)

    layers: Callable[[dict], int] | None = None  # the depth under other options, where options change it

    def depth_with(self, options: dict) -> int:
        """Weight layers of the model built with `options`."""
        return self.layers({**self.options, **options}) if self.layers else self.depth

    @property
    def shortcut(self) -> str:
        """The default shortcut option; "none" for a plain network (shortcut fixed to None); "–" for
        networks without the option (DenseNets, MLPs, super-resolution)."""
        if self.options.get("shortcut"):
            return self.options["shortcut"]
        fixed = self.build.keywords if isinstance(self.build, partial) else {}
        return "none" if "shortcut" in fixed else "–"


_MODELS: dict[str, ModelSpec] = {}


def _user_options(build: Callable[..., nn.Module]) -> dict:
    """Keyword-only parameters of `build` (num_classes aside) that a partial did not fix."""
    fixed = build.keywords if isinstance(build, partial) else {}
    params = inspect.signature(build).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.kind is p.KEYWORD_ONLY and p.name != "num_classes" and p.name not in fixed
    }


def register(name: str, build: Callable[..., nn.Module], **meta) -> None:
    """Add a model: `build(num_classes=..., **options)` returns it (no num_classes when the spec's
    num_classes is None); `meta` fills ModelSpec."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = ModelSpec(name=name, build=build, options=_user_options(build), **meta)


def list_models(family: str | None = None) -> list[str]:
    """Names of the registered models, in registration order, optionally of one family."""
    return [name for name, spec in _MODELS.items() if family in (None, spec.family)]


def families() -> list[str]:
    """The model families, in registration order."""
    return list(dict.fromkeys(spec.family for spec in _MODELS.values()))


def get_spec(name: str) -> ModelSpec:
    """The registry entry of `name`; UsageError listing the valid names if there is none."""
    try:
        return _MODELS[name]
    except KeyError:
        hint = did_you_mean(name, _MODELS, "`resnet models` lists them all", f"choose one of: {', '.join(_MODELS)}")
        raise UsageError(f"unknown model {name!r}; {hint}") from None


def create_model(name: str, num_classes: int | None = None, weights: str | Path | None = None, **options) -> nn.Module:
    """Build the network `name` with `num_classes` outputs (default: its data set's).

    `options` are the model's own (see `get_spec(name).options`), e.g. `shortcut="A"`,
    `variant="v1"`, `zero_init_residual=True`. Unknown names, options or values raise
    UsageError listing the valid choices.

    `weights`: a file (torchvision, timm, this project's checkpoint or export, safetensors) or the
    name of torchvision's published weights ("imagenet", "IMAGENET1K_V1", ...), loaded into the model
    (see `_create_with_weights`; without `num_classes`, the file's classifier decides).
    """
    if weights is not None:
        return _create_with_weights(name, weights, num_classes, options)
    spec = get_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise UsageError(f"{name} has no option {', '.join(map(repr, unknown))}; its options: {valid}")
    for option, value in options.items():
        _check_type(name, option, value, spec.options[option])
    if spec.num_classes is None:  # not a classifier
        if num_classes is not None:
            raise UsageError(f"{name} is not a classifier: it takes no num_classes")
    else:
        num_classes = spec.num_classes if num_classes is None else num_classes
        _check_type(name, "num_classes", num_classes, spec.num_classes)
        if num_classes < 1:
            raise UsageError(f"{name}: num_classes must be positive, not {num_classes}")
        options["num_classes"] = num_classes
    try:
        return spec.build(**options)
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(f"{name}: {e}") from None


def _create_with_weights(name: str, weights: str | Path, num_classes: int | None, options: dict) -> nn.Module:
    """The model with the weights loaded. This project's files bring their model options (those given
    win). Without `num_classes` the file's classifier decides the number of classes; with another
    `num_classes` than the file's, the backbone is loaded and the classifier is new (fine-tuning)."""
    get_spec(name)  # an unknown name is reported as such, before any file is looked for
    loaded = read_weights(weights_path(name, weights, options))
    if loaded.meta.get("model_name") == name:
        options = {**loaded.meta.get("model_options", {}), **options}
    model = create_model(name, num_classes, **options)
    classifier = classifier_name(model)
    classes = head_size(loaded, classifier)
    if num_classes is None and classes is not None and classes != model.get_submodule(classifier).out_features:
        model.reset_classifier(classes)
    load_weights(model, loaded, head="auto")
    return model


def _check_type(name: str, option: str, value, default) -> None:
    """UsageError unless `value` has the type of the option's default (bool is not an int)."""
    expected = type(default)
    if default is None or (type(value) is expected) or (expected is float and type(value) is int):
        return
    raise UsageError(f"{name}: option {option} takes a {expected.__name__}, not {value!r}")
