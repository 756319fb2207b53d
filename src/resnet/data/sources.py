"""From a `--data` argument to a data set's splits: the source found and read by the reader of its
kind (decoded once and cached, or listed for streaming), then validation and test parts held out and
classes selected. The kind is decided once, here: by name (`NAMED`), else by the file (`READERS`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache, partial
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
from .dataset import FEATURES, FILES, IMAGES, ArrayDataset, FileList, Split, hold_out, select
from .folder import FolderLayout, is_archive, iter_archive, scan
from .images import decode_image

EMBEDDED = "embedded"
SYNTHETIC = "synthetic"
DIGITS = "digits"  # 1,797 8×8 handwritten digits as 64 features (UCI; scikit-learn's copy), for the MLPs
SMALL_IMAGE = 64  # images up to this size are decoded once and held as tensors
CHUNK = 512  # images decoded per job of the decoding processes


def embedded_path() -> Path:
    """The CIFAR-10 subset shipped in the package (500 train and 100 test images per class)."""
    return Path(str(resources.files("resnet.assets").joinpath("cifar10-subset.tar.gz")))


@dataclass
class Data:
    """A data set ready to train on: its class names, where it came from, and its splits ("train",
    and "val" and/or "test"), each decoded in memory (`ArrayDataset`) or read as files (`FileList`),
    as `kind` says (dataset.IMAGES, FEATURES or FILES). `loader.make_loader` turns a split into
    batches with the loader of that kind."""

    classes: list[str]
    source: str
    splits: dict[str, Split]
    kind: str
    skipped: list[str] = field(default_factory=list)  # the unreadable images left out (data.skip_bad_images)

    @property
    def split_names(self) -> list[str]:
        return list(self.splits)

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def features(self) -> int:
        """Values per item (for models that take flat vectors, e.g. the residual MLP)."""
        if self.kind == FILES:
            raise UsageError(f"{self.source}: a model of feature vectors needs decoded data, not streamed files")
        return math.prod(self.splits["train"].images.shape[1:])


class Source(NamedTuple):
    """What a reader finds in a source: what to call it, its class names, each split's items (decoded
    images, feature vectors, or file names) with their labels, how they are held (`kind`, and `hold`
    which makes a split of them), and the paths of the unreadable images skipped."""

    title: str
    classes: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    kind: str
    hold: Callable[[np.ndarray, np.ndarray, list[str]], Split]
    skipped: tuple[str, ...] = ()


def load_data(cfg: DataConfig, cache: bool = True) -> Data:
    """The data set of `cfg`: its source read (decoded once and cached, or listed for streaming),
    then validation and test parts held out and classes selected as configured."""
    source = NAMED.get(cfg.source, _user_path)(cfg, cache)
    splits = hold_out(source.splits, test_fraction=cfg.test_fraction, val_size=cfg.val_size)
    splits, classes = select(splits, source.classes, keep=cfg.classes, per_class=cfg.train_per_class)
    held = {s: source.hold(items, labels, classes) for s, (items, labels) in splits.items()}
    return Data(classes, source.title, held, source.kind, list(source.skipped))


def read_path(path: Path, cfg: DataConfig, cache: bool = True, title: str | None = None) -> Source:
    """The data in the file or folder `path`, read by the first of `READERS` that recognizes it;
    `title` names it in reports (default: the path)."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir() and not any(path.iterdir()):
        raise UsageError(f"{path}: the folder is empty")
    read = next(read for recognizes, read in READERS if recognizes(path))
    return read(path, cfg, cache)._replace(title=title or str(path))


def read_features(path: Path, cfg: DataConfig, cache: bool) -> Source:
    """A table of feature vectors (CSV, .npy, .npz: `tabular`)."""
    return _from_arrays(tabular.load(path), FEATURES)


def read_cifar(path: Path, cfg: DataConfig, cache: bool) -> Source:
    """CIFAR-10/100 in their own archive or its folder, decoded once (cached)."""
    return _from_arrays(cached_arrays({"cifar": fingerprint(path)}, partial(cifar.load, path), cache), IMAGES)


def read_folder(path: Path, cfg: DataConfig, cache: bool) -> Source:
    """A class-folder layout in a folder or an archive: decoded once (cached) when its images are small
    or data.mode=tensor, else listed for streaming (data.mode=stream)."""
    layout = scan(path)
    mode = cfg.mode if cfg.mode != "auto" else _auto_mode(layout)
    if mode == "tensor":
        key = {"folder": fingerprint(path), "size": cfg.image_size, "skip_bad": cfg.skip_bad_images}
        build = partial(decode_layout, layout, cfg.image_size, cfg.skip_bad_images)
        source = _from_arrays(cached_arrays(key, build, cache), IMAGES)
        return source._replace(skipped=tuple(str(path / name) for name in source.skipped))
    if is_archive(path):
        raise UsageError(f"{path}: streaming large images needs an extracted folder, not an archive")
    names = {
        s: (np.array([n for n, _ in f], dtype=object), np.array([y for _, y in f])) for s, f in layout.splits.items()
    }
    return Source("", layout.classes, names, FILES, partial(_file_list, layout))


# the kinds of file and folder, each with its test and its reader; the first whose test passes reads a path
READERS = (
    (tabular.is_tabular, read_features),
    (cifar.detect, read_cifar),
    (lambda path: True, read_folder),  # any other: a class-folder layout, or `scan` says what is wrong
)


def synthetic(cfg: DataConfig, cache: bool = True, train: int = 1024, test: int = 256, classes: int = 10) -> Source:
    """Random uint8 images of the configured size with random labels: for benchmarks and smoke tests."""
    g = torch.Generator().manual_seed(0)
    size = cfg.image_size

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        return images.numpy(), torch.randint(0, classes, (n,), generator=g).numpy()

    names = [f"class{i}" for i in range(classes)]
    return Source(f"synthetic {size}×{size}", names, {"train": split(train), "test": split(test)}, IMAGES, _arrays)


def _embedded(cfg: DataConfig, cache: bool) -> Source:
    return read_path(embedded_path(), cfg, cache, "embedded CIFAR-10 subset")


def _digits(cfg: DataConfig, cache: bool) -> Source:
    path = Path(str(resources.files("resnet.assets").joinpath("digits.csv.gz")))
    return read_path(path, cfg, cache, "digits (UCI, via scikit-learn)")


def _named_cifar(cfg: DataConfig, cache: bool) -> Source:
    """CIFAR-10/100 by name: the archive under data.root (default: the cache), downloaded if asked."""
    root = Path(cfg.root).expanduser() if cfg.root else cache_dir() / "data"
    path = cifar.archive_path(cfg.source, root)
    if cfg.download:
        path = cifar.download(cfg.source, root)
    elif not path.exists():
        raise UsageError(f"{cfg.source}: {path} not found; add --download to fetch it, or pass --data PATH")
    return read_path(path, cfg, cache)


def _user_path(cfg: DataConfig, cache: bool) -> Source:
    return read_path(Path(cfg.source).expanduser(), cfg, cache)


NAMED = {  # the sources given by name (data.source), each with its reader; any other name is a path
    None: _embedded,
    EMBEDDED: _embedded,
    DIGITS: _digits,
    SYNTHETIC: synthetic,
    **dict.fromkeys(cifar.ARCHIVES, _named_cifar),
}


def _from_arrays(arrays: dict[str, np.ndarray], kind: str) -> Source:
    """A Source of `kind` from arrays named classes, <split>_images, <split>_labels (and skipped: names)."""
    splits = {
        s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in ("train", "val", "test") if f"{s}_images" in arrays
    }
    classes = [str(c) for c in arrays["classes"]]
    return Source("", classes, splits, kind, _arrays, tuple(str(name) for name in arrays.get("skipped", ())))


def _arrays(items: np.ndarray, labels: np.ndarray, classes: list[str]) -> ArrayDataset:
    return ArrayDataset(torch.from_numpy(items), torch.from_numpy(labels), classes)


def _file_list(layout: FolderLayout, names: np.ndarray, labels: np.ndarray, classes: list[str]) -> FileList:
    return FileList(layout, list(zip(names.tolist(), labels.tolist())))


def _auto_mode(layout: FolderLayout) -> str:
    """tensor when the first training image is small (SMALL_IMAGE), else stream."""
    name = layout.splits["train"][0][0]
    if is_archive(layout.root):
        stat = layout.root.stat()
        return _archive_mode(str(layout.root.resolve()), stat.st_size, stat.st_mtime_ns, name)
    return _mode_of(layout.read(name), name)


@lru_cache(maxsize=16)
def _archive_mode(path: str, size: int, mtime_ns: int, name: str) -> str:
    """`_auto_mode` of an archive, kept while its size and modification time stay (finding an image in a
    compressed archive reads it up to there)."""
    return _mode_of(next(iter_archive(Path(path), {name}))[1], name)


def _mode_of(source: bytes, name: str) -> str:
    return "tensor" if max(decode_image(source, name).size) <= SMALL_IMAGE else "stream"


def decode_layout(layout: FolderLayout, size: int, skip_bad: bool) -> dict[str, np.ndarray]:
    """Every image of every split decoded to uint8 3×size×size (resized and center-cropped if needed),
    in parallel processes for large sets. Unreadable images stop the decode, or are skipped and listed
    ("skipped": their names in the layout)."""
    wanted = {name for files in layout.splits.values() for name, _ in files}
    blobs = dict(iter_archive(layout.root, wanted)) if is_archive(layout.root) else {}
    arrays: dict[str, np.ndarray] = {"classes": np.array(layout.classes)}
    skipped: list[str] = []
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
            skipped += bad
            arrays[f"{split}_images"] = np.stack([images[i] for i in good]).transpose(0, 3, 1, 2).copy()
            arrays[f"{split}_labels"] = np.array([files[i][1] for i in good], dtype=np.int64)
    arrays["skipped"] = np.array(skipped, dtype=str)
    return arrays


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
