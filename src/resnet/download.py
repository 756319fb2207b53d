"""Downloads that keep nothing unverified: a temporary file, its digest checked, then renamed."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from .errors import UsageError


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file (e.g. "md5", "sha256"), read in 1 MB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, target: Path, algorithm: str, expected: str, hint: str = "") -> Path:
    """`target`, downloaded from `url` unless a copy whose digest starts with `expected` is there.

    The file is kept only if its digest matches; UsageError (naming the address, and `hint` on a failed
    download) otherwise.
    """
    if target.is_file() and file_digest(target, algorithm).startswith(expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part{os.getpid()}")
    print(f"downloading {url} to {target}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        digest = file_digest(tmp, algorithm)
        if not digest.startswith(expected):
            raise UsageError(
                f"{url}: checksum mismatch ({algorithm.upper()} {digest[:12]}…, expected {expected}…); nothing was kept"
            )
        os.replace(tmp, target)
    except OSError as e:
        raise UsageError(f"{url}: download failed ({getattr(e, 'reason', None) or e}){hint}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target
