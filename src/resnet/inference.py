"""Using a trained network: load a checkpoint, evaluate it on a data set, predict classes of images."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import checkpoint
from .config import DataConfig, TrainConfig, from_dict, resolve
from .data.augment import Normalize, center_crop, multiscale_sizes, resize_shorter
from .data.images import decode_image
from .data.loader import make_loader
from .data.sources import Data, load_data
from .errors import UsageError
from .files import write_together
from .models import create_model, get_spec
from .models.complexity import count_macs
from .models.weights import classifier_name, head_size, is_safetensors, load_weights, read_weights, weights_path
from .optimize import ENGINES, PRECISIONS, Inference, for_inference
from .train.evaluate import TTA, evaluate_batches
from .train.finetune import source_normalize
from .train.runtime import setup

SMALL_JOB = 256  # images: with engine auto, fewer run uncompiled (OpenVINO compiles in about a second)
# multiply-adds of a whole job below which the torch engine runs uncompiled: torch.compile takes 5-10 s,
# and on a 2-core AVX2 EPYC a job of resnet20 on 1,000 images (4e10) took 1.5 s uncompiled against 12.5 s,
# resnet50 on 64 224×224 images (2.6e11) 8.5 s against 17 s (one-off readings, 2026-12-04)
COMPILE_MACS = 4e11


@dataclass
class Classifier:
    """A trained network with what it needs to be used: class names, input size and normalization."""

    model: nn.Module
    model_name: str
    model_options: dict
    classes: list[str]
    normalize: Normalize
    image_size: int
    eval_resize: float
    config: TrainConfig
    engine: str = "auto"  # what computes the outputs: one of optimize.ENGINES
    precision: str = "auto"  # of the computation: fp32, bf16, or auto (see optimize.for_inference)
    _engines: dict = field(default_factory=dict, repr=False, compare=False)
    _macs: int | None = field(default=None, repr=False, compare=False)

    def inference(self, images: int) -> Inference:
        """What computes the outputs for a job of `images` images: `engine`, except where compiling would
        cost more than it saves: then the folded model runs uncompiled. With "auto" that is a job under
        SMALL_JOB images; the torch engine (named, or what "auto" is without OpenVINO) compiles only a job
        of at least COMPILE_MACS multiply-adds in all."""
        engine, compile = self.engine, True
        if engine == "auto" and images < SMALL_JOB:
            engine, compile = "torch", False
        elif engine in ("auto", "torch"):
            compile = images * self.macs() >= COMPILE_MACS
        if (engine, compile) not in self._engines:
            self._engines[engine, compile] = for_inference(
                self.model, self.device, engine=engine, precision=self.precision, compile=compile
            )
        return self._engines[engine, compile]

    def macs(self) -> int:
        """Multiply-adds of one forward pass on one input (an image of `image_size`, or a feature vector)."""
        if self._macs is None:
            shape = (self.model_options["in_features"],) if "in_features" in self.model_options else None
            self._macs = count_macs(self.model, shape or (3, self.image_size, self.image_size))
        return self._macs

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """RGB images to a normalized batch: shorter side resized, center crop of the input size."""
        size = self.image_size
        crops = [center_crop(resize_shorter(im, round(size * self.eval_resize)), size) for im in images]
        x = torch.from_numpy(np.stack([np.asarray(c) for c in crops]).transpose(0, 3, 1, 2).copy())
        return self.normalize.to(self.device)(x.to(self.device))

    @torch.no_grad()
    def predict(self, images, topk: int = 5) -> list[list[tuple[str, float]]]:
        """The `topk` most probable classes of each image, with their probabilities: one list per image,
        for one image as for several. `images`: a path, a PIL image, an array (H×W×C, or N×H×W×C, uint8
        0–255 or float 0–1), a tensor (C×H×W or N×C×H×W, torchvision's layout), or a list of them."""
        if "in_features" in self.model_options:
            raise UsageError(
                f"{self.model_name} reads feature vectors, not images: call classifier.model(x) on "
                "vectors normalized by classifier.normalize"
            )
        decoded = as_images(images)
        probs = self.inference(len(decoded))(self.preprocess(decoded)).softmax(1)
        values, indices = probs.topk(min(topk, len(self.classes)), dim=1)
        values, indices = values.tolist(), indices.tolist()  # one read from the device, not one per image
        return [[(self.classes[i], p) for i, p in zip(row_i, row_p)] for row_i, row_p in zip(indices, values)]


def as_images(images) -> list[Image.Image]:
    """`images` (see Classifier.predict) as a list of RGB PIL images; UsageError for anything else."""
    if isinstance(images, (str, Path)):
        return [decode_image(images)]
    if isinstance(images, Image.Image):
        return [images.convert("RGB")]
    if isinstance(images, torch.Tensor):  # channels first, as torchvision's transforms make them
        images = images.detach().cpu().movedim(-3, -1).numpy() if images.ndim in (3, 4) else images.numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return [image for one in images for image in as_images(one)]
        if images.ndim != 3 or images.shape[-1] not in (1, 3, 4):
            raise UsageError(f"an image array is H×W×C with 1, 3 or 4 channels, not of shape {images.shape}")
        pixels = images if images.dtype == np.uint8 else np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
        return [Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")]
    if isinstance(images, (list, tuple)):
        return [image for one in images for image in as_images(one)]
    raise UsageError(f"predict takes paths, PIL images, arrays or tensors, not {type(images).__name__}")


def load(
    path: str | Path | None = None,
    device: str | torch.device = "auto",
    engine: str = "auto",
    *,
    model: str | None = None,
    weights: str | None = None,
    precision: str = "auto",
) -> Classifier:
    """The network of a checkpoint written by `resnet train` (or of its safetensors export), or with `model`
    and `weights` the network this package ships (`load(model="resnet20", weights="cifar10")`), in eval mode
    on `device` (auto: a GPU if there is one, else the CPU), with its classes and normalization; `predict`
    and `evaluate` compute with `engine` in `precision` (see `resnet.optimize.for_inference`: auto is bf16
    where the device computes it natively; fp32 gives the same answers on every machine)."""
    if engine not in ENGINES:
        raise UsageError(f"unknown inference engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    _check_precision(precision)
    classifier = _load(path, device, engine, model, weights)
    classifier.precision = precision
    return classifier


def _load(
    path: str | Path | None, device: str | torch.device, engine: str, model: str | None, weights: str | None
) -> Classifier:
    if (path is None) == (weights is None):
        raise UsageError("load a checkpoint (path) or shipped weights (model=NAME, weights='cifar10'), one of them")
    if weights is not None:
        if model is None:
            raise UsageError(f"weights={weights!r}: name the network with model= (e.g. model='resnet20')")
        path = weights_path(model, weights)
    device = setup(str(device)).device
    if Path(path).is_file() and is_safetensors(Path(path)):
        return _from_export(path, device, engine)
    state = checkpoint.load(path)
    classes = list(state["classes"])
    model = create_model(state["model_name"], num_classes=len(classes), **state["model_options"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise UsageError(
            f"{path}: weights do not fit {state['model_name']} ({str(e).splitlines()[1].strip()})"
        ) from None
    config = from_dict(TrainConfig, state["config"])
    normalize = Normalize(**state["normalize"])
    return Classifier(
        model=model.to(device).eval(),
        model_name=state["model_name"],
        model_options=dict(state["model_options"]),
        classes=classes,
        normalize=normalize,
        image_size=state["image_size"],
        eval_resize=state["eval_resize"],
        config=config,
        engine=engine,
    )


def _from_export(path: str | Path, device: torch.device, engine: str) -> Classifier:
    """The network of a safetensors file of `resnet export`, whose metadata name the network, its classes,
    input size, normalization and training data."""
    meta = read_weights(path).meta
    if "model_name" not in meta:
        raise UsageError(
            f"{path}: safetensors without the metadata of resnet export: resnet eval {path} --model NAME --data DATA"
        )
    classifier = from_weights(path, meta["model_name"], meta["classes"], device=device, engine=engine)
    data = replace(classifier.config.data, source=meta.get("data"))  # None: the embedded subset, as in training
    return replace(classifier, config=replace(classifier.config, data=data))


def family_config(model: str) -> TrainConfig:
    """The recipe of `model`'s family (cifar-paper or imagenet-paper): how a network of weights that
    record nothing about their training is fed (image size, resizing for evaluation)."""
    return resolve("cifar-paper" if get_spec(model).family == "cifar" else "imagenet-paper", {}, model=model)


def from_weights(
    path: str | Path, model: str, classes: list[str], device: str = "cpu", engine: str = "auto"
) -> Classifier:
    """The network `model` with the weights of another library's file at `path` (torchvision, timm,
    the widely used CIFAR reproduction, safetensors; see `create_model(..., weights=)`), for images of
    `classes`. These files do not record how they were trained, so the input is prepared as by the
    recipe of the model's family (cifar-paper or imagenet-paper) and normalized with ImageNet's
    statistics, the convention of published files (this project's checkpoints and safetensors exports
    record their own options, sizes and normalization, which are used)."""
    weights = read_weights(path)
    config, meta = family_config(model), weights.meta  # this project's files record options and sizes
    if meta.get("model_name", model) != model:
        raise UsageError(f"{path} holds {meta['model_name']}, not {model}")
    options = meta.get("model_options", {})
    network = create_model(model, num_classes=len(classes), **options)
    outputs = head_size(weights, classifier_name(network))
    if outputs is not None and outputs != len(classes):
        raise UsageError(f"{path}: its classifier has {outputs} outputs; the data has {len(classes)} classes")
    load_weights(network, weights)
    return Classifier(
        model=network.to(device).eval(),
        model_name=model,
        model_options=dict(options),
        classes=list(classes),
        normalize=source_normalize(weights),
        image_size=meta.get("image_size", config.data.image_size),
        eval_resize=meta.get("eval_resize", config.data.eval_resize),
        config=config,
        engine=engine,
    )


def evaluate(
    path: str | Path,
    data: str | None = None,
    split: str = "test",
    tta: str = "none",
    out: str | Path | None = None,
    batch_size: int = 256,
    device: str = "auto",
    engine: str = "auto",
    model: str | None = None,
    size: int | None = None,
    scales: list[int] | None = None,
    precision: str = "auto",
) -> dict:
    """Top-1/top-5 error, per-class accuracy and confusion matrix of a checkpoint on `split` of `data`
    (default: the data it was trained on), computed by `engine` (see `resnet.optimize.for_inference`).
    `path` may also be another library's weights file: then `model` names its network and `data` is
    needed (see `from_weights`). With `out`, writes metrics.json, confusion.csv and confusion.png.

    `tta`: one of TTA; "multiscale" is §3.4's fully convolutional testing, the probabilities of the
    whole image (and its mirror image) averaged over the shorter sides `scales` (default: the paper's
    224, 256, 384, 480, 640, scaled by the training crop / 224), one image at a time. `size`: the
    side of the evaluation crop (default: the checkpoint's data.eval_size, else its image size).
    `precision`: as `load`'s; the metrics record the one used."""
    _check_tta(tta, size, scales)
    _check_precision(precision)
    runtime = setup(device)
    classifier, dataset, data_cfg = _classifier_and_data(path, data, model, device=runtime.device, engine=engine)
    classifier.precision = precision
    if size:
        data_cfg = replace(data_cfg, eval_size=size)
    if tta == "multiscale":
        scales = list(scales or multiscale_sizes(data_cfg.image_size))
    _check_split(dataset, split, classifier)
    metrics = _measure(
        classifier, dataset, split, data_cfg, tta=tta, scales=scales, batch_size=batch_size, device=runtime.device
    )
    metrics.update(
        {
            "scales": scales,
            "checkpoint": str(path),
            "model": classifier.model_name,
            "data": dataset.source,
            "split": split,
            "tta": tta,
            "classes": classifier.classes,
        }
    )
    if out is not None:
        _write_report(metrics, Path(out))
    return metrics


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")


def _check_tta(tta: str, size: int | None, scales: list[int] | None) -> None:
    """UsageError for an unknown `tta`, and for `size` or `scales` where `tta` has no use for them."""
    if tta not in TTA:
        raise UsageError(f"unknown test-time augmentation {tta!r}; choose one of: {', '.join(TTA)}")
    if scales and tta != "multiscale":
        raise UsageError(f"scales are the shorter sides of multi-scale testing (tta=multiscale), not of tta={tta}")
    if size and tta == "multiscale":
        raise UsageError("multi-scale testing evaluates whole images at its scales, not crops of one size")


def _classifier_and_data(
    path: str | Path, data: str | None, model: str | None, device: torch.device, engine: str
) -> tuple[Classifier, Data, DataConfig]:
    """The network at `path`, the data set to evaluate it on and that data's config: a checkpoint of
    resnet train knows its network, data and classes; another library's file (`model`) needs `data`."""
    if model is None:
        classifier = load(path, device=device, engine=engine)
        data_cfg = classifier.config.data if data is None else replace(classifier.config.data, source=data)
        return classifier, load_data(data_cfg), data_cfg
    if data is None:
        raise UsageError(f"{path}: with --model, name the data set too (e.g. --data cifar10-jpeg.tar.gz)")
    dataset = load_data(replace(family_config(model).data, source=data))
    classifier = from_weights(path, model, dataset.classes, device=device, engine=engine)
    return classifier, dataset, replace(classifier.config.data, source=data)


def _check_split(dataset: Data, split: str, classifier: Classifier) -> None:
    """UsageError unless `dataset` has `split` and the classes `classifier` was trained on."""
    if split not in dataset.split_names:
        raise UsageError(f"the data has no {split!r} split; it has: {', '.join(dataset.split_names)}")
    if dataset.classes != classifier.classes:
        raise UsageError(
            f"the data's classes {dataset.classes[:5]}... are not the checkpoint's {classifier.classes[:5]}..."
        )


def _measure(
    classifier: Classifier,
    dataset: Data,
    split: str,
    data_cfg: DataConfig,
    *,
    tta: str,
    scales: list[int] | None,
    batch_size: int,
    device: torch.device,
) -> dict:
    """The metrics of `classifier` on `split` of `dataset` (see `evaluate_batches`), then what computed
    them (engine, precision) and the side of the crop evaluated (None for whole images at `scales`)."""
    loader = make_loader(
        dataset, split, data_cfg, train=False, batch_size=batch_size, device=device, normalize=classifier.normalize
    )
    # whole images have shapes of their own: an engine would compile and check each one, the model runs as it is
    fast = classifier.inference(dataset.size(split)) if tta != "multiscale" else None
    metrics = evaluate_batches(
        classifier.model, loader.eval_batches(tta=tta, scales=scales), len(classifier.classes), tta=tta, forward=fast
    )
    metrics.update(
        {
            "engine": fast.engine if fast else "torch",
            "precision": fast.precision if fast else "fp32",
            "size": None if scales else loader.eval_size,
        }
    )
    return metrics


def _write_report(metrics: dict, out: Path) -> None:
    """metrics.json, confusion.csv and confusion.png in `out`, all or none of them (a full disk)."""
    from .plots import confusion_matrix

    classes = metrics["classes"]
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["true \\ predicted", *classes])
    writer.writerows([name, *row] for name, row in zip(classes, metrics["confusion"]))
    title = f"{metrics['model']} on {metrics['split']}: top-1 error {100 * metrics['top1_error']:.2f}%"
    write_together(
        {
            out / "metrics.json": lambda f: f.write(json.dumps(metrics, indent=2).encode()),
            out / "confusion.csv": lambda f: f.write(table.getvalue().encode()),
            out / "confusion.png": lambda f: confusion_matrix(metrics["confusion"], classes, f, title),
        }
    )
