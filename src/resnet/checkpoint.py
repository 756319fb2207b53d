"""Checkpoints: one file holding everything a run needs to continue exactly, written atomically,
read without executing code."""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .errors import UsageError, write_failed

FORMAT = "resnet.checkpoint"
VERSION = 2  # 2: with a digest of the contents


def save(payload: dict, path: Path) -> None:
    """Write `payload` to `path` atomically: a temporary file beside it, flushed to disk, then renamed
    over the old one. A crash at any moment leaves the previous checkpoint intact. A digest of the
    contents goes with it, so that later damage is detected on loading."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    payload = {"format": FORMAT, "version": VERSION, **payload}
    payload["digest"] = digest(payload)
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a failed write as a RuntimeError
        tmp.unlink(missing_ok=True)
        raise write_failed(path, e, "the previous checkpoint is intact") from None


def digest(payload: dict) -> str:
    """A BLAKE2 digest of every tensor's bytes and every other value of `payload` (its "digest" aside)."""
    h = hashlib.blake2b(digest_size=16)

    def walk(obj) -> None:
        if isinstance(obj, torch.Tensor):
            h.update(f"{obj.dtype}{tuple(obj.shape)}".encode())
            h.update(obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                if key != "digest":
                    h.update(repr(key).encode())
                    walk(obj[key])
        elif isinstance(obj, (list, tuple)):
            h.update(f"[{len(obj)}".encode())
            for item in obj:
                walk(item)
        else:
            h.update(repr(obj).encode())

    walk(payload)
    return h.hexdigest()


def safe_load(path: Path, map_location="cpu"):
    """torch.load that never executes code (weights_only, plus argparse.Namespace, which timm's training
    checkpoints hold). UsageError naming the file for a pickle that would call code, or a damaged file."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        reason = f"loading it would call {culprit[1]}" if culprit else str(e).splitlines()[0]
        raise UsageError(f"{path}: refused: {reason} (code in a pickle); only plain tensors are loaded") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UsageError(f"{path}: damaged or truncated file ({str(e).splitlines()[0][:120]})") from None


def load(path: str | Path, map_location="cpu") -> dict:
    """The payload of a checkpoint written by `save`. UsageError, naming the file, for a missing,
    truncated or damaged file, another format or version, or a pickle that would run code."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint")
    payload = safe_load(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(
            f"{path}: not a checkpoint of resnet train; another library's weights load with "
            "create_model(NAME, weights=PATH), or resnet eval PATH --model NAME --data DATA"
        )
    if payload.get("version") != VERSION:
        raise UsageError(
            f"{path}: checkpoint format version {payload.get('version')} is not supported (this is {VERSION})"
        )
    if payload.get("digest") != digest(payload):
        raise UsageError(f"{path}: damaged checkpoint (its contents do not match their digest)")
    return payload
