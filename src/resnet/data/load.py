"""From a `--data` argument to decoded splits: resolving the source, decoding once (cached), and
holding out validation and test parts."""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from ..cache import cache_dir
from ..config import DataConfig
from ..errors import UsageError
from . import cifar, tabular
from .augment import center_crop, resize_shorter
from .cache import cached_arrays, fingerprint
from .dataset import ArrayDataset, FileList, Split, stratified_split
from .folder import FolderLayout, is_archive, iter_archive, scan
from .images import decode_image

EMBEDDED = "embedded"
SYNTHETIC = "synthetic"
DIGITS = "digits"  # 1,797 8×8 handwritten digits as 64 features (UCI; scikit-learn's copy), for the MLPs
SMALL_IMAGE = 64  # images up to this size are decoded once and held as tensors


def embedded_path() -> Path:
    """The CIFAR-10 subset shipped in the package (500 train and 100 test images per class)."""
    return Path(str(resources.files("resnet.assets").joinpath("cifar10-subset.tar.gz")))


@dataclass
class Data:
    """A data set ready to train on: its class names, where it came from, and its splits ("train",
    and "val" and/or "test"), each decoded in memory (`ArrayDataset`) or read as files (`FileList`).
    `loader.make_loader` turns a split into batches; nothing else needs to know which it is."""

    classes: list[str]
    source: str
    splits: dict[str, Split]
    skipped: int = 0  # unreadable images left out (data.skip_bad_images)

    @property
    def split_names(self) -> list[str]:
        return list(self.splits)

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def features(self) -> int:
        """Values per item (for models that take flat vectors, e.g. the residual MLP)."""
        train = self.splits["train"]
        if not isinstance(train, ArrayDataset):
            raise UsageError(f"{self.source}: a model of feature vectors needs decoded data, not streamed files")
        return math.prod(train.images.shape[1:])


def resolve_source(cfg: DataConfig) -> Path:
    """The path behind `data.source`: the embedded subset, a named CIFAR archive, or a user path."""
    if cfg.source in (None, EMBEDDED):
        return embedded_path()
    if cfg.source == DIGITS:
        return Path(str(resources.files("resnet.assets").joinpath("digits.csv.gz")))
    if cfg.source in cifar.ARCHIVES:
        root = Path(cfg.root).expanduser() if cfg.root else cache_dir() / "data"
        path = cifar.archive_path(cfg.source, root)
        if cfg.download:
            return cifar.download(cfg.source, root)
        if not path.exists():
            raise UsageError(f"{cfg.source}: {path} not found; add --download to fetch it, or pass --data PATH")
        return path
    return Path(cfg.source).expanduser()


class Source(NamedTuple):
    """What a reader finds in a source: class names, each split's items (decoded images, feature
    vectors, or file names) with their labels, the layout the files are read from, skipped images."""

    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    layout: FolderLayout | None = None
    skipped: int = 0


def load_data(cfg: DataConfig, cache: bool = True) -> Data:
    """The data set of `cfg`: its source read (decoded once and cached, or listed for streaming),
    then validation and test parts held out and classes selected as configured."""
    if cfg.source == SYNTHETIC:
        source, name = synthetic(cfg), f"synthetic {cfg.image_size}×{cfg.image_size}"
    else:
        path = resolve_source(cfg)
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir() and not any(path.iterdir()):
            raise UsageError(f"{path}: the folder is empty")
        source, name = read_source(path, cfg, cache), _source_name(cfg, path)
    splits, classes = _select(_holdouts(source.splits, cfg), source.classes, cfg)
    if source.layout is not None:
        files = {
            s: FileList(source.layout, list(zip(names.tolist(), labels.tolist())))
            for s, (names, labels) in splits.items()
        }
        return Data(classes, name, files, source.skipped)
    arrays = {
        s: ArrayDataset(torch.from_numpy(items), torch.from_numpy(labels), classes)
        for s, (items, labels) in splits.items()
    }
    return Data(classes, name, arrays, source.skipped)


def read_source(path: Path, cfg: DataConfig, cache: bool = True) -> Source:
    """The reader of `path`'s kind: a table of features, CIFAR's own archives, or a class-folder
    layout (decoded when its images are small, or data.mode says so; else streamed)."""
    if tabular.is_tabular(path):
        return _from_arrays(tabular.load(path))
    if cifar.detect(path) is not None:
        return _from_arrays(cached_arrays({"cifar": fingerprint(path)}, lambda: cifar.load(path), cache))
    layout = scan(path)
    if (cfg.mode if cfg.mode != "auto" else _auto_mode(layout)) == "stream":
        if is_archive(path):
            raise UsageError(f"{path}: streaming large images needs an extracted folder, not an archive")
        names = {
            s: (np.array([n for n, _ in f], dtype=object), np.array([y for _, y in f]))
            for s, f in layout.splits.items()
        }
        return Source(layout.classes, names, layout)
    key = {"folder": fingerprint(path), "size": cfg.image_size, "skip_bad": cfg.skip_bad_images}
    return _from_arrays(cached_arrays(key, lambda: decode_layout(layout, cfg.image_size, cfg.skip_bad_images), cache))


def synthetic(cfg: DataConfig, train: int = 1024, test: int = 256, classes: int = 10) -> Source:
    """Random uint8 images of the configured size with random labels: for benchmarks and smoke tests."""
    g = torch.Generator().manual_seed(0)
    size = cfg.image_size

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        return images.numpy(), torch.randint(0, classes, (n,), generator=g).numpy()

    return Source([f"class{i}" for i in range(classes)], {"train": split(train), "test": split(test)})


def _from_arrays(arrays: dict[str, np.ndarray]) -> Source:
    """A Source from arrays named classes, <split>_images, <split>_labels (and skipped)."""
    splits = {
        s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in ("train", "val", "test") if f"{s}_images" in arrays
    }
    return Source([str(c) for c in arrays["classes"]], splits, skipped=int(arrays.get("skipped", 0)))


def _source_name(cfg: DataConfig, path: Path) -> str:
    names = {
        None: "embedded CIFAR-10 subset",
        EMBEDDED: "embedded CIFAR-10 subset",
        DIGITS: "digits (UCI, via scikit-learn)",
    }
    return names.get(cfg.source, str(path))


def _auto_mode(layout: FolderLayout) -> str:
    name = layout.splits["train"][0][0]
    source = next(iter_archive(layout.root, {name}))[1] if is_archive(layout.root) else layout.read(name)
    return "tensor" if max(decode_image(source, name).size) <= SMALL_IMAGE else "stream"


def decode_layout(layout: FolderLayout, size: int, skip_bad: bool) -> dict[str, np.ndarray]:
    """Every image of every split decoded to uint8 3×size×size (resized and center-cropped if needed),
    in parallel processes for large sets. Unreadable images stop the decode, or are skipped and counted."""
    wanted = {name for files in layout.splits.values() for name, _ in files}
    blobs = dict(iter_archive(layout.root, wanted)) if is_archive(layout.root) else {}
    arrays: dict[str, np.ndarray] = {"skipped": np.array(0), "classes": np.array(layout.classes)}
    workers = min(os.cpu_count() or 1, 16) if len(wanted) > 4096 else 1
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        for split, files in layout.splits.items():
            jobs = [
                [(name, blobs.get(name) or layout.root / name) for name, _ in files[i : i + CHUNK]]
                for i in range(0, len(files), CHUNK)
            ]
            chunks = list(
                pool.map(_decode_chunk, jobs, repeat(size)) if pool else map(_decode_chunk, jobs, repeat(size))
            )
            images = [image for chunk in chunks for image in chunk]
            bad = [files[i][0] for i, image in enumerate(images) if isinstance(image, str)]
            if bad and not skip_bad:
                raise UsageError(images[files.index(next(f for f in files if f[0] == bad[0]))])
            good = [i for i, image in enumerate(images) if not isinstance(image, str)]
            if not good:
                raise UsageError(f"{layout.root}: no readable image in the {split} split")
            arrays["skipped"] += len(bad)
            arrays[f"{split}_images"] = np.stack([images[i] for i in good]).transpose(0, 3, 1, 2).copy()
            arrays[f"{split}_labels"] = np.array([files[i][1] for i in good], dtype=np.int64)
    return arrays


CHUNK = 512


def _decode_chunk(items: list[tuple[str, bytes | Path]], size: int) -> list[np.ndarray | str]:
    """Each image as HWC uint8 size×size, or the error message that names it."""
    out = []
    for name, source in items:
        try:
            data = source.read_bytes() if isinstance(source, Path) else source
            out.append(_fit(decode_image(data, name), size))
        except UsageError as e:
            out.append(str(e))
        except OSError as e:
            out.append(f"{name}: unreadable ({e.strerror or e})")
    return out


def _fit(image: Image.Image, size: int) -> np.ndarray:
    """HWC uint8 of exactly size×size: the shorter side resized to `size`, then a center crop."""
    if image.size != (size, size):
        image = center_crop(resize_shorter(image, size), size)
    return np.asarray(image)


def _select(splits: dict, classes: list[str], cfg: DataConfig) -> tuple[dict, list[str]]:
    """Keep only the classes `cfg.classes` (in that order) and at most `cfg.train_per_class` training
    items of each (the same ones for every seed)."""
    if cfg.classes:
        unknown = [c for c in cfg.classes if c not in classes]
        if unknown:
            raise UsageError(f"data.classes: no class {unknown[0]!r}; the data's classes: {', '.join(classes)}")
        old = np.array([classes.index(c) for c in cfg.classes])
        remap = np.full(len(classes), -1)
        remap[old] = np.arange(len(old))
        kept = {s: remap[labels] >= 0 for s, (_, labels) in splits.items()}
        splits = {s: (items[kept[s]], remap[labels[kept[s]]]) for s, (items, labels) in splits.items()}
        classes = list(cfg.classes)
    if cfg.train_per_class:
        items, labels = splits["train"]
        rng = np.random.default_rng(0)
        keep = np.sort(
            np.concatenate(
                [rng.permutation(np.flatnonzero(labels == c))[: cfg.train_per_class] for c in range(len(classes))]
            )
        )
        splits["train"] = (items[keep], labels[keep])
    return splits, classes


def _holdouts(splits: dict[str, tuple[np.ndarray, np.ndarray]], cfg: DataConfig) -> dict:
    """Hold out a test part (when the source has no test or val split) and a validation part."""
    splits = dict(splits)
    if "test" not in splits and "val" not in splits:
        splits["train"], splits["test"] = _take(*splits["train"], cfg.test_fraction)
    if cfg.val_size:
        if "val" in splits:
            raise UsageError("data.val_size is set but the source already has a val split")
        holdout = int(cfg.val_size) if cfg.val_size >= 1 else cfg.val_size
        if isinstance(holdout, int) and holdout >= len(splits["train"][1]):
            raise UsageError(f"data.val_size={holdout} leaves no training images (of {len(splits['train'][1])})")
        splits["train"], splits["val"] = _take(*splits["train"], holdout)
    return {s: splits[s] for s in ("train", "val", "test") if s in splits}


def _take(items: np.ndarray, labels: np.ndarray, holdout: int | float):
    kept, held = stratified_split(labels, holdout)
    if not len(kept) or not len(held):
        raise UsageError(f"cannot hold out {holdout} of {len(labels)} images")
    return (items[kept], labels[kept]), (items[held], labels[held])
