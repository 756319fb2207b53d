"""Training configuration: typed sections, filled from a recipe file and `key=value` overrides.

Recipes are YAML files shipped in `resnet/recipes/`; every key is checked against the dataclasses
below, so a misspelt key or a value of the wrong type is a one-line UsageError naming it.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import math
import sys
import tokenize
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from .errors import UsageError, did_you_mean


@dataclass
class DataConfig:
    source: str | None = None  # a folder or archive, cifar10, cifar100, a feature file; None: the embedded subset
    root: str | None = None  # where named data sets are looked for and downloaded (default: the cache)
    download: bool = False  # fetch a named data set (cifar10, cifar100) if it is missing
    mode: str = "auto"  # tensor: decoded once, resident on the device; stream: files through workers
    image_size: int = 32  # side of the training crop, in pixels
    augment: str = "pad-crop-flip"  # training augmentation (pad-crop-flip: §4.2; scale: §3.4)
    pad: int = 4  # pad-crop-flip: zero padding on each side, in pixels
    scale: list[float] = field(default_factory=lambda: [256, 480])  # scale: range of the shorter side
    area: list[float] = field(default_factory=lambda: [0.08, 1.0])  # random-resized-crop: range of the crop's area
    auto_augment: str = "none"  # per image after the crop and flip: randaugment or trivialaugment (torchvision's)
    randaugment_ops: int = 2  # randaugment: N, the operations applied to each image (Cubuk et al. 2020)
    randaugment_magnitude: int = 9  # randaugment: M, the magnitude of every operation, of 0-30
    random_erase: float = 0.0  # random erasing (Zhong et al. 2017): the probability that a box is set to 0 (the mean)
    erase_area: list[float] = field(default_factory=lambda: [0.02, 0.33])  # random erasing: range of the box's area
    erase_ratio: list[float] = field(default_factory=lambda: [0.3, 3.3])  # random erasing: range of the box's h / w
    mixup: float = 0.0  # mixup's α: images and labels blended by λ ~ Beta(α, α) (Zhang et al. 2018; 0: off)
    cutmix: float = 0.0  # cutmix's α: a box of another image pasted, labels by its area (Yun et al. 2019; 0: off)
    mix_prob: float = 1.0  # mixup and cutmix: the share of batches mixed
    switch_prob: float = 0.5  # with both mixup and cutmix: the share of mixed batches that cutmix mixes
    eval_resize: float = 1.143  # stream evaluation: shorter side = eval size × this, then a center crop
    eval_size: int = 0  # stream evaluation: the center crop's side, e.g. above image_size (FixRes); 0: image_size
    lighting: float = 0  # §3.4's "standard color augmentation", AlexNet's PCA lighting noise: its std (0.1; 0: off)
    normalize: str = "channel"  # channel: per-channel mean and std; pixel-mean: subtract the mean image (§4.2)
    val_size: float = 0  # held out of train for validation: a count (≥ 1) or a fraction (< 1)
    test_fraction: float = 0.1  # held out as test when the source has no test/ or val/ split
    workers: int = 8  # stream mode: decoding processes
    skip_bad_images: bool = False  # leave unreadable images out (listed in skipped-images.txt) instead of stopping
    classes: list[str] | None = None  # keep only these classes, in this order
    train_per_class: int = 0  # at most this many training images of each class (0: all)


@dataclass
class OptimizerConfig:
    name: str = "sgd"  # SGD with momentum (the paper's), AdamW, or LAMB (You et al. 2019; pip install 'resnet[lamb]')
    lr: float = 0.1  # learning rate (the peak, with warm-up or one-cycle)
    momentum: float = 0.9  # SGD momentum
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's and LAMB's betas
    nesterov: bool = False  # SGD: Nesterov momentum
    weight_decay: float = 1e-4  # L2 weight decay
    decay_norm_and_bias: bool = True  # false: no weight decay on BN parameters and biases
    scale_lr: bool = False  # linear scaling rule: lr × global batch / reference_batch
    reference_batch: int = 256  # the batch that lr is given for, with scale_lr


@dataclass
class ScheduleConfig:
    name: str = "step"  # the learning-rate schedule
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step: lr drops here (run fractions)
    gamma: float = 0.1  # step and plateau: factor at each milestone or plateau
    patience: int = 5  # plateau: evaluations without a better validation (else test) error
    warmup: float = 0  # linear warm-up: iterations (≥ 1) or a fraction of the run (< 1)
    final_lr: float = 0  # cosine and onecycle: learning rate at the end, as a fraction of lr
    warmup_lr: float = 0  # §4.2 warm-up of deep nets: hold this lr until the training error is low enough (0: off)
    warmup_until_error: float = 0.8  # §4.2 warm-up: the training error that ends it ("about 400 iterations")
    warmup_min_depth: int = 110  # §4.2 warm-up: only for networks this deep or deeper
    warmup_max_iters: int = 2000  # §4.2 warm-up: never longer than this many iterations


@dataclass
class FinetuneConfig:
    source: str | None = None  # pre-trained weights: a checkpoint or weights file, or a published name
    mode: str = "full"  # linear: probe (frozen backbone and BN); full; gradual: unfreezing from the top
    backbone_lr: float = 0.1  # full and gradual: the backbone's learning rate, as a fraction of lr
    normalize: str = "source"  # source: the pre-trained model's input normalization; data: fit on the data


@dataclass
class EmaConfig:
    decay: float = 0  # moving average of the weights and BN statistics, evaluated and saved as the model (0: off)
    every: int = 1  # update the average every N iterations
    warmup: bool = True  # the decay ramps up as 1 - (1 + updates)^(-2/3) until it reaches `decay` (timm's EMA warm-up)


@dataclass
class LogConfig:
    evals: int = 40  # evaluations over the run (the curves' points)
    every: int = 0  # evaluate every N iterations instead (0: use evals)
    tensorboard: bool = False  # also write TensorBoard event files (needs tensorboard installed)
    checkpoint_every: int = 0  # also save last.pt every N iterations (0: at each evaluation)
    checkpoint_minutes: float = 0  # also save last.pt every N minutes of wall-clock time (0: off)
    diagnostics: bool = False  # gradient norms and layer responses at the start and at each evaluation
    diagnostics_batch: int = 128  # images of the fixed batches the diagnostics are measured on
    eval_share: float = 0.1  # with evals: evaluations stretched apart to stay under this share of the run


@dataclass
class TrainConfig:
    model: str = "resnet20"  # a name from `resnet models`
    model_options: dict = field(default_factory=dict)  # options of the model, e.g. {shortcut: B}
    recipe: str = "cifar-paper"  # the recipe this config came from (recorded, not read)
    batch_size: int = 128  # the global batch, split among the processes of a distributed run
    iters: int = 0  # length of the run in iterations (0: given in epochs)
    epochs: float = 0  # length of the run in epochs (0: given in iterations)
    label_smoothing: float = 0.0  # label smoothing of the loss's targets (mixed ones too)
    loss: str = "cross-entropy"  # cross-entropy; bce: each class's binary cross-entropy, summed (Wightman et al. 2021)
    bce_threshold: float = 0.0  # bce: targets above this become 1, the others 0 (RSB's 0.2; 0: off)
    precision: str = "auto"  # autocast precision; auto: bf16 where the device has native bf16, else fp32
    channels_last: bool = False  # NHWC memory format (faster convolutions on CPUs and tensor-core GPUs)
    compile: str = "none"  # torch.compile mode of the training step
    seed: int = 0  # random seed (CPU runs are bit-for-bit reproducible)
    device: str = "auto"  # auto: a GPU if there is one, else the CPU
    deterministic: bool = False  # deterministic kernels on GPUs (CPU runs are reproducible anyway)
    nonfinite: str = "stop"  # what a NaN or infinite loss does: stop the run or skip the step
    sync_bn: bool = False  # distributed: SyncBatchNorm (CUDA)
    freeze_bn: bool = False  # BN layers normalize with their running statistics and do not update them
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    log: LogConfig = field(default_factory=LogConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)


CHOICES = {
    "data.mode": ("auto", "tensor", "stream"),
    "data.augment": ("pad-crop-flip", "scale", "random-resized-crop", "flip", "none"),
    "data.normalize": ("channel", "pixel-mean"),
    "data.auto_augment": ("none", "randaugment", "trivialaugment"),
    "loss": ("cross-entropy", "bce"),
    "optimizer.name": ("sgd", "adamw", "lamb"),
    "schedule.name": ("step", "plateau", "cosine", "onecycle", "constant"),
    "precision": ("fp32", "bf16", "fp16", "auto"),
    "compile": ("none", "default", "reduce-overhead", "max-autotune"),
    "nonfinite": ("stop", "skip"),
    "finetune.mode": ("linear", "full", "gradual"),
    "finetune.normalize": ("source", "data"),
}
POSITIVE = {
    "batch_size",
    "data.image_size",
    "log.evals",
    "log.diagnostics_batch",
    "optimizer.reference_batch",
    "schedule.patience",
    "ema.every",
}
NON_NEGATIVE = {
    "iters",
    "epochs",
    "label_smoothing",
    "data.pad",
    "data.randaugment_ops",
    "data.mixup",
    "data.cutmix",
    "data.val_size",
    "data.test_fraction",
    "optimizer.lr",
    "optimizer.momentum",
    "optimizer.weight_decay",
    "schedule.warmup",
    "schedule.final_lr",
    "schedule.warmup_lr",
    "log.every",
    "data.train_per_class",
    "finetune.backbone_lr",
    "log.checkpoint_every",
    "log.checkpoint_minutes",
    "schedule.warmup_max_iters",
    "data.workers",
    "data.eval_size",
    "data.lighting",
}


INTERVALS = {  # key: (low, high, whether each end is allowed)
    "label_smoothing": (0, 1, True, False),
    "data.randaugment_magnitude": (0, 30, True, True),
    "data.random_erase": (0, 1, True, True),
    "data.mix_prob": (0, 1, True, True),
    "data.switch_prob": (0, 1, True, True),
    "bce_threshold": (0, 1, True, False),
    "log.eval_share": (0, 1, False, True),
    "data.test_fraction": (0, 1, False, False),
    "ema.decay": (0, 1, True, False),
}
RANGES = {  # key: (bottom, top, whether bottom itself is allowed) of a pair [low, high], low ≤ high
    "data.erase_area": (0, 1, True),
    "data.erase_ratio": (0, math.inf, False),
    "data.area": (0, 1, False),
    "data.scale": (0, math.inf, False),
}
DEVICES = "auto, cpu, cuda, cuda:N"


def _interval(key: str) -> str:
    low, high, closed_low, closed_high = INTERVALS[key]
    return f"{'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"


def _range(key: str) -> str:
    bottom, top, closed = RANGES[key]
    return f"{'[' if closed else '('}{bottom}, {top}{']' if top < math.inf else ')'}"


def _allowed(key: str) -> str:
    """What `check` accepts for `key` beyond its type, in words ("" if anything of the type)."""
    if key in CHOICES:
        return ", ".join(CHOICES[key])
    if key in INTERVALS:
        return f"in {_interval(key)}"
    if key in RANGES:
        return f"low ≤ high, in {_range(key)}"
    if key == "schedule.milestones":
        return "fractions in (0, 1)"
    if key == "device":
        return DEVICES
    return "> 0" if key in POSITIVE else "≥ 0" if key in NON_NEGATIVE else ""


def recipe_names() -> list[str]:
    """The recipes shipped with the package."""
    return sorted(
        p.name.removesuffix(".yaml") for p in resources.files("resnet.recipes").iterdir() if p.name.endswith(".yaml")
    )


def load_recipe(name: str) -> dict:
    """The raw mapping of a shipped recipe, or of a YAML file when `name` is a path."""
    path = Path(name)
    if name.endswith((".yaml", ".yml")) or path.is_file():
        return _read_yaml(path.read_text() if path.is_file() else None, name)
    if name not in recipe_names():
        raise UsageError(f"unknown recipe {name!r}; choose one of: {', '.join(recipe_names())}")
    return _read_yaml(resources.files("resnet.recipes").joinpath(f"{name}.yaml").read_text(), name)


def _read_yaml(text: str | None, name: str) -> dict:
    if text is None:
        raise UsageError(f"{name}: no such recipe file")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise UsageError(f"{name}:{line} malformed YAML ({getattr(e, 'problem', e)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(f"{name}: a recipe is a mapping of keys to values, not {type(raw).__name__}")
    return raw


def parse_override(text: str) -> tuple[str, object]:
    """`key.sub=value` -> ("key.sub", value), the value read as YAML (numbers, booleans, lists)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"override {text!r} is not key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value  # not YAML: the plain string
    return key.strip(), parsed


def parse_overrides(overrides: list[str] | dict | None) -> dict:
    """{key: value} of `overrides`: "key=value" strings (as --set gives them) or a mapping already."""
    if isinstance(overrides, dict):
        return dict(overrides)
    return dict(map(parse_override, overrides or []))


def apply_override(raw: dict, key: str, value) -> None:
    """Set a dotted key in a nested mapping."""
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"override {key}: {part} is not a section")
        node = child
    node[last] = value


def resolve(recipe: str = "cifar-paper", overrides: list[str] | dict | None = None, **fields) -> TrainConfig:
    """The TrainConfig of `recipe` with `overrides` ("key=value" strings or a {key: value} mapping)
    and then `fields` (top-level keys) applied, every key and value checked."""
    raw = load_recipe(recipe)
    raw.pop("description", None)
    raw["recipe"] = recipe
    given = parse_overrides(overrides)
    for key, value in given.items():
        apply_override(raw, key, value)
    if fields.get("iters") and not fields.get("epochs"):  # one length replaces the other
        fields["epochs"] = 0
    elif fields.get("epochs") and not fields.get("iters"):
        fields["iters"] = 0
    for key, value in fields.items():
        if value is not None:
            apply_override(raw, key, set_once(given, key, value))
    config = from_dict(TrainConfig, raw)
    check(config)
    return config


def set_once(given: dict, key: str, value):
    """`value` for `key`, recorded in `given` (the user's overrides); UsageError if the user gave `key`
    another value: what a user gives is never silently replaced."""
    if given.setdefault(key, value) != value:
        raise UsageError(
            f"{key} is given twice: {given[key]!r} as an override (--set {key}=...) and {value!r} "
            "by an option of the command; give it once"
        )
    return value


def from_dict(cls, raw: dict, prefix: str = ""):
    """Build dataclass `cls` from a mapping; UsageError for unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise UsageError(f"{prefix.rstrip('.') or 'config'} must be a mapping, not {raw!r}")
    fields_ = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        if key not in fields_:
            name, listing = f"{prefix}{key}", f"valid keys: {', '.join(prefix + k for k in fields_)}"
            hint = did_you_mean(name, dotted_keys(cls, prefix), "`resnet recipes` lists every key", listing)
            raise UsageError(f"unknown key '{name}'; {hint}")
        values[key] = _convert(hints[key], value, prefix + key)
    return cls(**values)


def dotted_keys(cls, prefix: str = "") -> list[str]:
    """Every key of dataclass `cls`, the keys of its sections dotted (optimizer.lr)."""
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        section = dataclasses.is_dataclass(hints[f.name])
        keys += dotted_keys(hints[f.name], f"{prefix}{f.name}.") if section else [prefix + f.name]
    return keys


def _convert(hint, value, key: str):
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key + ".")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            raise UsageError(f"{key} must be a list, not {value!r}")
        return [_convert(args[0], v, key) for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{key} must be a mapping, not {value!r}")
        return dict(value)
    if hint is float and type(value) in (int, float):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
        try:
            return float(value)
        except ValueError:
            pass
    if type(value) is not hint:
        raise UsageError(f"{key} must be {hint.__name__}, not {value!r}")
    return value


def check(config: TrainConfig) -> None:
    """Range and choice checks that the types alone do not express."""
    flat = to_flat(config)
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise UsageError(f"{key}={flat[key]!r} is not one of: {', '.join(choices)}")
    for key in POSITIVE:
        if flat[key] <= 0:
            raise UsageError(f"{key} must be positive, not {flat[key]}")
    for key in NON_NEGATIVE:
        if flat[key] < 0:
            raise UsageError(f"{key} must not be negative, not {flat[key]}")
    if bool(config.iters) == bool(config.epochs):
        raise UsageError("set exactly one of iters and epochs (a positive length for the run)")
    for key, (low, high, closed_low, closed_high) in INTERVALS.items():
        value = flat[key]
        if not ((low <= value) if closed_low else (low < value)) or not (
            (value <= high) if closed_high else (value < high)
        ):
            raise UsageError(f"{key} must be in {_interval(key)}, not {value}")
    for key, (bottom, top, closed) in RANGES.items():
        pair = flat[key]
        above = len(pair) == 2 and ((bottom <= pair[0]) if closed else (bottom < pair[0]))
        if not above or not pair[0] <= pair[1] <= top:
            raise UsageError(f"{key} must be two numbers low ≤ high, in {_range(key)}, not {pair}")
    if config.bce_threshold and config.loss != "bce":
        raise UsageError(f"bce_threshold={config.bce_threshold} applies to loss=bce, not loss={config.loss}")
    if any(not 0 < m < 1 for m in config.schedule.milestones):
        raise UsageError(f"schedule.milestones are fractions of the run in (0, 1), not {config.schedule.milestones}")
    if config.device not in ("auto", "cpu", "cuda") and not config.device.startswith("cuda:"):
        raise UsageError(f"device={config.device!r} is not one of: {DEVICES}")


def check_supported(data: DataConfig, supported: dict[str, tuple[tuple, str]]) -> None:
    """Refuse the data settings that the loader of the data does not take: `supported` (the loader's
    `supports`) maps a key of `data` to (the values the loader takes, the refusal, with {value})."""
    for key, (values, refusal) in supported.items():
        if (value := getattr(data, key)) not in values:
            raise UsageError(refusal.format(value=value))


def to_dict(config) -> dict:
    """The nested plain mapping of a config (what config.yaml of a run holds)."""
    return dataclasses.asdict(config)


def to_flat(config) -> dict:
    """{"data.image_size": 32, ...}: every leaf under its dotted key."""
    flat = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and key != "model_options":
                walk(value, f"{prefix}{key}.")
            else:
                flat[prefix + key] = value

    walk(to_dict(config), "")
    return flat


# -- the keys, described (`resnet recipes`) ----------------------------------------------------------


def keys(recipe: str | None = None) -> list[dict]:
    """Every recipe key: {key, type, default, allowed, meaning}, and with `recipe` its `value` there.
    All of it comes from the definitions above: the dataclasses' fields, their comments, the checks."""
    defaults = to_flat(TrainConfig())
    values = to_flat(resolve(recipe)) if recipe else {}
    comments = _field_comments()
    rows = []

    def walk(cls, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
                continue
            key = prefix + f.name
            row = {"key": key, "type": _type_name(hints[f.name]), "default": defaults[key], "allowed": _allowed(key)}
            if recipe:
                row["value"] = values[key]
            row["meaning"] = comments.get((cls.__name__, f.name), "")
            rows.append(row)

    walk(TrainConfig, "")
    return rows


def _type_name(hint) -> str:
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return text or str(hint).replace("typing.", "")


@lru_cache(maxsize=1)
def _field_comments() -> dict[tuple[str, str], str]:
    """{(class, field): the comment on the field's line} of this module's dataclasses."""
    source = inspect.getsource(sys.modules[__name__])
    comments = {
        t.start[0]: t.string.lstrip("# ").strip()
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type == tokenize.COMMENT
    }
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    if item.end_lineno in comments:
                        found[node.name, item.target.id] = comments[item.end_lineno]
    return found
