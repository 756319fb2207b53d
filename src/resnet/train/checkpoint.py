"""Checkpoints: one file holding everything a run needs to continue exactly, written atomically,
read without executing code."""

from __future__ import annotations

import errno
import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import UsageError

FORMAT = "resnet.checkpoint"
VERSION = 1


def save(payload: dict, path: Path) -> None:
    """Write `payload` to `path` atomically: a temporary file beside it, flushed to disk, then renamed
    over the old one. A crash at any moment leaves the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise UsageError(f"{path}: disk full while writing the checkpoint; the previous one is intact") from None
        raise UsageError(f"{path}: cannot write the checkpoint ({e.strerror or e})") from None


def load(path: str | Path, map_location="cpu") -> dict:
    """The payload of a checkpoint written by `save`. UsageError, naming the file, for a missing,
    truncated or damaged file, another format or version, or a pickle that would run code."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).split("\n")[0] if "Weights only load failed" not in str(e) else "it would execute code"
        raise UsageError(f"{path}: refused: {reason}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UsageError(f"{path}: damaged or truncated checkpoint ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(f"{path}: not a resnet checkpoint (for plain weights use create_model(..., weights=PATH))")
    if payload.get("version") != VERSION:
        raise UsageError(
            f"{path}: checkpoint format version {payload.get('version')} is not supported (this is {VERSION})"
        )
    return payload
