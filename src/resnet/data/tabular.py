"""Feature vectors from a CSV, .npy or .npz file, for the residual MLPs.

CSV: one row per sample, numbers only (a header row is allowed); the label is the column named
label, target, class or y, else the last column. .npy: a 2-D array whose last column is the label.
.npz: arrays named x (or X, data, features) and y (or labels, target).
"""

from __future__ import annotations

import csv
import gzip
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UsageError

SUFFIXES = (".csv", ".csv.gz", ".npy", ".npz")
LABEL_COLUMNS = ("label", "labels", "target", "class", "y")


def is_tabular(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(SUFFIXES)


def load(path: Path) -> dict[str, np.ndarray]:
    """Arrays `train_images` (float32 N×D features), `train_labels` (int64, 0..K-1) and `classes`
    (the original label values as strings, sorted numerically where they are numbers)."""
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz")):
            features, labels = _csv(path)
        elif name.endswith(".npy"):
            array = np.load(path, allow_pickle=False)
            if array.ndim != 2 or array.shape[1] < 2:
                raise UsageError(f"{path}: expected a 2-D array of features with the label in the last column")
            features, labels = array[:, :-1], array[:, -1]
        else:
            features, labels = _npz(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, csv.Error) as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(f"{path}: unreadable ({str(e).splitlines()[0][:120]})") from None
    features = np.asarray(features, dtype=np.float32)
    if not np.isfinite(features).all():
        raise UsageError(f"{path}: features must be finite numbers (found NaN or infinity)")
    classes, index = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise UsageError(f"{path}: found {len(classes)} label value(s); a classifier needs at least 2")
    return {
        "train_images": features,
        "train_labels": index.astype(np.int64),
        "classes": np.array([_name(c) for c in classes]),
    }


def _name(value) -> str:
    return str(int(value)) if isinstance(value, (float, np.floating)) and float(value).is_integer() else str(value)


def _csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        raise UsageError(f"{path}: the file is empty")
    header = None if _numeric(rows[0]) else [h.strip().lower() for h in rows[0]]
    body = rows[1:] if header else rows
    column = next((header.index(c) for c in LABEL_COLUMNS if header and c in header), len(rows[0]) - 1)
    if any(len(r) != len(rows[0]) for r in body):
        raise UsageError(f"{path}: rows of different lengths")
    labels = [r[column] for r in body]
    try:
        features = np.array([[float(v) for i, v in enumerate(r) if i != column] for r in body], dtype=np.float32)
    except ValueError as e:
        raise UsageError(f"{path}: a feature is not a number ({e})") from None
    return features, np.array([float(v) if _numeric([v]) else v for v in labels], dtype=object)


def _numeric(values) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        x = next((f[k] for k in ("x", "X", "data", "features") if k in f.files), None)
        y = next((f[k] for k in ("y", "labels", "target") if k in f.files), None)
    if x is None or y is None or x.ndim != 2 or len(x) != len(y):
        raise UsageError(f"{path}: expected arrays x (N×D) and y (N) (or X/data/features and labels/target)")
    return x, y
