"""A data set's splits, as its consumers see them: decoded arrays resident in memory, or lists of
image files decoded on the fly; and the one deterministic way of holding a part out of a split and of
selecting classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from .folder import FolderLayout

# How a data set holds its items, decided once by the reader of its source; each has its loader.
IMAGES = "images"  # decoded uint8 images N×3×H×W, in memory
FEATURES = "features"  # float32 feature vectors N×D, in memory
FILES = "files"  # image files, decoded when a batch needs them

Pairs = dict[str, tuple[np.ndarray, np.ndarray]]  # each split's (items, labels)


@dataclass
class ArrayDataset:
    """A decoded split: `images` (uint8 images N×3×H×W, or float32 feature vectors N×D), `labels`
    int64 (N,), and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FileList:
    """A split of image files: (name, label) pairs, read from `layout` when a batch needs them."""

    layout: FolderLayout
    files: list[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.files)


Split = ArrayDataset | FileList


def stratified_split(labels: np.ndarray, holdout: int | float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) with `holdout` items (a count, or a fraction of each class) held out
    evenly across classes. The same labels and seed always give the same split."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    total = holdout if isinstance(holdout, int) else round(holdout * len(labels))
    kept, held = [], []
    for i, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        # spread the count over the classes; the first classes take the remainder
        share = total // len(classes) + (i < total % len(classes))
        held.append(members[:share])
        kept.append(members[share:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def sample(split: Split, count: int, seed: int = 0) -> Split:
    """`count` items of `split` drawn evenly from its classes (as `stratified_split` holds out), in an
    order shuffled by `seed` so that any first part of them mixes the classes too: the splits of a
    folder of class folders are read class by class, so their first items are of one class."""
    labels = split.labels.numpy() if isinstance(split, ArrayDataset) else np.array([label for _, label in split.files])
    rng = np.random.default_rng(seed)
    chosen = np.arange(len(labels)) if count >= len(labels) else stratified_split(labels, count, seed)[1]
    order = rng.permutation(chosen)
    if isinstance(split, ArrayDataset):
        index = torch.from_numpy(order)
        return ArrayDataset(split.images[index], split.labels[index], split.classes)
    return FileList(split.layout, [split.files[i] for i in order])


def hold_out(splits: Pairs, test_fraction: float, val_size: float) -> Pairs:
    """The splits with a test part held out of train (`test_fraction`, when the source has no test or
    val split) and a validation part (`val_size`: a count ≥ 1, a fraction < 1, or 0 for none)."""
    splits = dict(splits)
    if "test" not in splits and "val" not in splits:
        splits["train"], splits["test"] = _take(*splits["train"], test_fraction)
    if val_size:
        if "val" in splits:
            raise UsageError("data.val_size is set but the source already has a val split")
        holdout = int(val_size) if val_size >= 1 else val_size
        if isinstance(holdout, int) and holdout >= len(splits["train"][1]):
            raise UsageError(f"data.val_size={holdout} leaves no training images (of {len(splits['train'][1])})")
        splits["train"], splits["val"] = _take(*splits["train"], holdout)
    return {s: splits[s] for s in ("train", "val", "test") if s in splits}


def _take(items: np.ndarray, labels: np.ndarray, holdout: int | float):
    kept, held = stratified_split(labels, holdout)
    if not len(kept) or not len(held):
        raise UsageError(f"cannot hold out {holdout} of {len(labels)} images")
    return (items[kept], labels[kept]), (items[held], labels[held])


def select(splits: Pairs, classes: list[str], keep: list[str] | None, per_class: int) -> tuple[Pairs, list[str]]:
    """The splits and class names with only the classes `keep` (in that order; None: all) and at most
    `per_class` training items of each (0: all; the same ones for every seed)."""
    if keep:
        unknown = [c for c in keep if c not in classes]
        if unknown:
            raise UsageError(f"data.classes: no class {unknown[0]!r}; the data's classes: {', '.join(classes)}")
        old = np.array([classes.index(c) for c in keep])
        remap = np.full(len(classes), -1)
        remap[old] = np.arange(len(old))
        kept = {s: remap[labels] >= 0 for s, (_, labels) in splits.items()}
        splits = {s: (items[kept[s]], remap[labels[kept[s]]]) for s, (items, labels) in splits.items()}
        classes = list(keep)
    if per_class:
        items, labels = splits["train"]
        rng = np.random.default_rng(0)
        keep_index = np.sort(
            np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(len(classes))])
        )
        splits["train"] = (items[keep_index], labels[keep_index])
    return splits, classes
