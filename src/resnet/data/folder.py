"""Image data sets in the class-folder layout, in a folder or a .tar(.gz) archive:

[top/]train/<class>/*.jpg   [top/]val/<class>/...   [top/]test/<class>/...
[top/]<class>/*.jpg          (no split folders: held-out part split off by fraction)
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from ..errors import UsageError
from .images import is_image_name

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_listing(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The file and folder names in the .tar(.gz) archive at `path`. Listing a compressed archive
    reads all of it, so the listing is kept for as long as the file's size and modification time stay
    the same. tarfile's errors (and OSError, EOFError) pass to the caller."""
    stat = path.stat()
    return _listing(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _listing(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    return tuple(m.name for m in members if m.isfile()), tuple(m.name for m in members if m.isdir())


@dataclass
class FolderLayout:
    """The files of each split as (name, label), the class names, and where to read them."""

    root: Path
    splits: dict[str, list[tuple[str, int]]]
    classes: list[str]

    def read(self, name: str) -> bytes:
        """The bytes of one file of a folder (archives are read whole by `iter_archive`)."""
        return (self.root / name).read_bytes()


def list_names(path: Path) -> tuple[list[str], list[str]]:
    """Relative posix names of the image files and of the folders under `path` (a folder or archive)."""
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if path.is_dir():
        files, dirs = [], []
        for root, dirnames, filenames in os.walk(path):
            rel = Path(root).relative_to(path)
            dirs += [(rel / d).as_posix() for d in dirnames]
            files += [(rel / f).as_posix() for f in filenames if is_image_name(f)]
        return sorted(files), sorted(dirs)
    if is_archive(path):
        try:
            files, dirs = archive_listing(path)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise UsageError(f"{path}: unreadable archive ({e})") from None
        return sorted(f for f in files if is_image_name(f)), sorted(dirs)
    raise UsageError(f"{path}: expected a folder or a .tar/.tar.gz archive of class folders")


def scan(path: Path) -> FolderLayout:
    """The class-folder layout of `path`; UsageError for an empty source or a class folder without images."""
    files, dirs = list_names(path)
    if not files:
        raise UsageError(f"{path}: no images found (expected train/<class>/*.jpg or <class>/*.jpg)")
    entries = []
    for name in files:
        parts = [part for part in name.split("/") if part not in ("", ".")]  # PurePosixPath's parts, 10× faster
        split = SPLIT_NAMES.get(parts[-3].lower()) if len(parts) >= 3 else None
        if len(parts) >= 2:
            entries.append((name, split, parts[-2], "/".join(parts[:-1])))
    has_splits = any(split for _, split, _, _ in entries)
    if has_splits and not any(split == "train" for _, split, _, _ in entries):
        raise UsageError(f"{path}: has split folders but no train/<class>/ images")
    if not entries:
        raise UsageError(f"{path}: images must sit in class folders (<class>/*.jpg)")
    entries = [e for e in entries if (e[1] is not None) == has_splits]
    default = "train" if not has_splits else None
    class_dirs = {folder for _, _, _, folder in entries}
    classes = sorted({cls for _, split, cls, _ in entries if (split or default) == "train"})
    if len(classes) < 2:
        raise UsageError(f"{path}: found {len(classes)} class folder(s); a classifier needs at least 2")
    empty = _empty_class_folders(dirs, class_dirs)
    if empty:
        raise UsageError(f"{path}: class folder {empty[0]} has no images")
    index = {c: i for i, c in enumerate(classes)}
    splits: dict[str, list[tuple[str, int]]] = {}
    for name, split, cls, _ in entries:
        split = split or default
        if cls not in index:
            raise UsageError(f"{path}: class {cls!r} of the {split} split has no train/{cls}/ folder")
        splits.setdefault(split, []).append((name, index[cls]))
    return FolderLayout(path, splits, classes)


def _empty_class_folders(dirs: list[str], class_dirs: set[str]) -> list[str]:
    """Folders that sit where class folders sit (beside one with images) but hold no image."""
    class_dirs = {PurePosixPath(d) for d in class_dirs}
    parents = {d.parent for d in class_dirs}
    return [d for d in dirs if PurePosixPath(d).parent in parents and PurePosixPath(d) not in class_dirs]


def iter_archive(path: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the `wanted` files of a tar archive, in one sequential pass."""
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and member.name in wanted:
                yield member.name, tar.extractfile(member).read()
