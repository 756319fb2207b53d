"""A data set's splits, as its consumers see them: decoded arrays resident in memory, or lists of
image files decoded on the fly; and the one deterministic way of holding a part out of a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .folder import FolderLayout


@dataclass
class ArrayDataset:
    """A decoded split: `images` (uint8 images N×3×H×W, or float32 feature vectors N×D), `labels`
    int64 (N,), and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ArrayDataset:
        return ArrayDataset(self.images[index], self.labels[index], self.classes)


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
