"""Penultimate-layer embeddings (`model.forward_features`) of every image of a folder, preprocessed
as `resnet predict` does, for retrieval, clustering or a linear probe."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .data.folder import list_names
from .data.images import decode_image
from .errors import UsageError
from .files import write_together
from .inference import load
from .train.runtime import setup


@dataclass
class Features:
    """`features` (N × num_features float32) of the images `paths` (relative to the folder, in
    sorted order); `labels`: each image's folder name when every image sits in a (class) folder."""

    features: np.ndarray
    paths: list[str]
    labels: list[str] | None
    skipped: list[str] = field(default_factory=list)  # unreadable images left out (skip_bad_images)

    def save(self, out: str | Path) -> tuple[Path, Path]:
        """Write `out` (.npy) and beside it a .csv with a row (path[, label]) per row of the array;
        returns both paths. Both are written to temporary files first, then renamed over old ones."""
        out, sidecar = output_paths(out)
        header, rows = (["path", "label"], zip(self.paths, self.labels)) if self.labels else (["path"], zip(self.paths))
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([header, *rows])
        write_together({out: lambda f: np.save(f, self.features), sidecar: lambda f: f.write(text.getvalue().encode())})
        return out, sidecar


def output_paths(out: str | Path) -> tuple[Path, Path]:
    """The .npy file `out` and its .csv sidecar; UsageError unless `out` ends in .npy."""
    out = Path(out)
    if out.suffix != ".npy":
        raise UsageError(f"{out}: the features file must end in .npy")
    return out, out.with_suffix(".csv")


@torch.no_grad()
def extract_features(
    checkpoint: str | Path,
    data: str | Path,
    batch_size: int = 64,
    device: str = "auto",
    skip_bad_images: bool = False,
) -> Features:
    """The embeddings of every image under the folder `data` (recursively) by the network of
    `checkpoint`, in batches of `batch_size` on `device`. An unreadable image raises UsageError
    naming it, unless `skip_bad_images`, which leaves it out and lists it in `skipped`."""
    root = Path(data)
    if not root.is_dir():
        raise UsageError(f"{root}: expected a folder of images")
    if batch_size < 1:
        raise UsageError(f"batch size must be positive, not {batch_size}")
    names, _ = list_names(root)
    if not names:
        raise UsageError(f"{root}: no images found")
    classifier = load(checkpoint, setup(device).device)
    model = classifier.model.eval()
    kept, skipped, chunks = [], [], []
    for start in range(0, len(names), batch_size):
        images = []
        for name in names[start : start + batch_size]:
            try:
                images.append(decode_image(root / name))
                kept.append(name)
            except UsageError:
                if not skip_bad_images:
                    raise
                skipped.append(name)
        if images:
            chunks.append(model.forward_features(classifier.preprocess(images)).float().cpu().numpy())
    if not kept:
        raise UsageError(f"{root}: none of its {len(names)} images could be read")
    features = np.concatenate(chunks).astype(np.float32, copy=False)
    in_folders = all(len(PurePosixPath(n).parts) > 1 for n in kept)
    labels = [PurePosixPath(n).parts[-2] for n in kept] if in_folders else None
    return Features(features, kept, labels, skipped)
