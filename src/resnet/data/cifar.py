"""CIFAR-10 and CIFAR-100 in their standard python-pickle archives (the .tar.gz or its folder),
and their download from the canonical addresses, checksum verified, only when asked."""

from __future__ import annotations

import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..download import fetch
from ..errors import UsageError
from .folder import archive_listing


@dataclass(frozen=True)
class CifarArchive:
    name: str
    url: str
    md5: str
    folder: str  # the folder inside the archive
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str


ARCHIVES = {
    "cifar10": CifarArchive(
        "cifar10",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": CifarArchive(
        "cifar100",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
        ("train",),
        "test",
        "meta",
        "fine_labels",
        "fine_label_names",
    ),
}


def archive_path(name: str, root: Path) -> Path:
    """Where `download` puts the archive of `name` under `root`."""
    return root / PurePosixPath(ARCHIVES[name].url).name


def detect(path: Path) -> CifarArchive | None:
    """The CIFAR archive kind of a .tar(.gz) or folder (it holds the test batch and the meta file), else None."""
    if path.is_dir():
        names = {p.name for p in path.rglob("*") if p.is_file()}
    elif path.is_file() and path.name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        try:
            names = {name.rsplit("/", 1)[-1] for name in archive_listing(path)[0]}
        except (tarfile.TarError, OSError, EOFError):
            return None
    else:
        return None
    return next((spec for spec in ARCHIVES.values() if {spec.test, spec.meta} <= names), None)


def _members(path: Path) -> dict[str, bytes]:
    """The pickle files of an archive or folder, by base name."""
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with tarfile.open(path) as tar:
        return {PurePosixPath(m.name).name: tar.extractfile(m).read() for m in tar if m.isfile()}


def _unpickle(data: bytes, name: str) -> dict:
    # The CIFAR batches are plain dicts of arrays, lists and strings; anything else is refused.
    try:
        return _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise UsageError(f"{name}: not a CIFAR batch ({e})") from None


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and the bytes of protocol-2 pickles written by Python 3), nothing else."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load(path: Path) -> dict[str, np.ndarray]:
    """Arrays `train_images`, `train_labels`, `test_images`, `test_labels` (images uint8 N×3×32×32)
    and `classes` from a CIFAR-10/100 archive or its extracted folder."""
    spec = detect(path)
    if spec is None:
        raise UsageError(f"{path}: not a CIFAR-10/100 python archive")
    files = _members(path)
    missing = [n for n in (*spec.train, spec.test, spec.meta) if n not in files]
    if missing:
        raise UsageError(f"{path}: incomplete {spec.name} archive, missing {', '.join(missing)}")
    arrays = {}
    for split, names in (("train", spec.train), ("test", (spec.test,))):
        batches = [_unpickle(files[n], f"{path}:{n}") for n in names]
        images = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        arrays[f"{split}_images"] = images.reshape(-1, 3, 32, 32)
        arrays[f"{split}_labels"] = np.concatenate([np.asarray(b[spec.label_key], dtype=np.int64) for b in batches])
    arrays["classes"] = np.array(_unpickle(files[spec.meta], f"{path}:{spec.meta}")[spec.names_key])
    return arrays


def download(name: str, root: Path, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch the archive of `name` into `root` unless a verified copy is there; returns its path.
    The file is kept only once its MD5 matches."""
    spec = ARCHIVES[name]
    return fetch(url or spec.url, archive_path(name, root), "md5", md5 or spec.md5)
