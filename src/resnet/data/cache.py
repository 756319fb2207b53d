"""An on-disk cache of decoded data sets, so that each source is decoded once."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..cache import cache_dir

CACHE_VERSION = 2  # 2: a folder's entry lists its skipped images by name (1 counted them)


def fingerprint(path: Path) -> list:
    """What identifies the contents of a file or folder cheaply: names, sizes and modification times."""
    path = path.resolve()
    if path.is_file():
        stat = path.stat()
        return [str(path), stat.st_size, stat.st_mtime_ns]
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            entries.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns))
    digest = hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()
    return [str(path), digest]


def cached_arrays(key: dict, build: Callable[[], dict[str, np.ndarray]], enabled: bool = True) -> dict[str, np.ndarray]:
    """`build()`'s arrays, from the cache when an entry for `key` exists, else built and stored.

    Entries are written atomically (temporary file, then rename): a killed run leaves none half-written.
    """
    if not enabled:
        return build()
    name = hashlib.sha256(json.dumps([CACHE_VERSION, key], sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / "datasets" / f"{name}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError):
            pass  # a damaged entry is rebuilt below
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full cache only costs the next run a decode
    return arrays
