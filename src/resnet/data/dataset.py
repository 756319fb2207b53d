"""Decoded data sets held as uint8 tensors, and their deterministic splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
