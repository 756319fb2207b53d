"""Checkpoints: one file holding everything a run needs to continue exactly, written atomically,
read without executing code."""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import shutil
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import UsageError, write_failed

FORMAT = "resnet.checkpoint"
VERSION = 3  # 2: with a BLAKE2 digest of the contents; 3: a CRC-32 one, four times faster (both are read)
READ_VERSIONS = (2, 3)


def save(payload: dict, path: Path) -> None:
    """Write `payload` to `path` atomically: a temporary file beside it, flushed to disk, then renamed
    over the old one. A crash at any moment leaves the previous checkpoint intact. A digest of the
    contents goes with it, so that later damage is detected on loading."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    payload = {"format": FORMAT, "version": VERSION, **payload}
    payload["digest"] = digest(payload)
    try:
        with open(tmp, "wb") as f, _without_zip_crc32():
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a failed write as a RuntimeError
        tmp.unlink(missing_ok=True)
        raise write_failed(path, e, "the previous checkpoint is intact") from None


def duplicate(source: Path, path: Path) -> None:
    """Make `path` a second name of the checkpoint `source` (best.pt of last.pt) without writing it
    again: a hard link where the file system has them, else a copy, put in place atomically. `save`
    replaces a file with a new one and never writes into it, so the two stay apart afterwards."""
    source, path = Path(source), Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and FAT file systems)
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_failed(path, e, "the previous checkpoint is intact") from None


@contextmanager
def _without_zip_crc32():
    """torch.save without the CRC-32 of each record in its zip archive, which torch.load never checks:
    the digest covers the same bytes, and skipping it halves the time of writing (torch>=2.6)."""
    options = getattr(torch.serialization, "get_crc32_options", None)
    previous = options() if options else None
    if options:
        torch.serialization.set_crc32_options(False)
    try:
        yield
    finally:
        if options:
            torch.serialization.set_crc32_options(previous)


class _CRC32:
    """zlib's CRC-32 with hashlib's interface: damage to a file changes it, as the zip format relies on."""

    def __init__(self):
        self.value = 0

    def update(self, data) -> None:
        self.value = zlib.crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


def digest(payload: dict, version: int = VERSION) -> str:
    """A digest of every tensor's bytes and every other value of `payload` (its "digest" aside): CRC-32
    (format version 3), BLAKE2 (version 2)."""
    h = _CRC32() if version >= 3 else hashlib.blake2b(digest_size=16)

    def walk(obj) -> None:
        if isinstance(obj, torch.Tensor):
            h.update(f"{obj.dtype}{tuple(obj.shape)}".encode())
            h.update(obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # no copy
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


# what a file torch.load cannot read is, by its first bytes, and what to do with it
PREDICT = "resnet predict CHECKPOINT {path} gives its classes"
OTHER_KINDS = (
    (b"\x89PNG", "a PNG image", PREDICT),
    (b"\xff\xd8\xff", "a JPEG image", PREDICT),
    (b"GIF8", "a GIF image", PREDICT),
    (b"<?xml", "an XML file (OpenVINO's models are FILE.xml and FILE.bin)", "run it with OpenVINO"),
    (b"version https://git-lfs", "a Git LFS pointer", "the file itself is fetched by `git lfs pull`"),
)
ONNX = "run it with ONNX Runtime or OpenVINO; resnet eval and predict take the checkpoint it was exported from"
NOT_TORCH = "neither a PyTorch file (a zip archive or a pickle) nor safetensors"


def file_kind(path: Path) -> str | None:
    """What the file at `path` is and what to do with it, when its first bytes say it is no PyTorch file;
    None when it may be one (or is empty: a truncated one)."""
    with open(path, "rb") as f:
        head = f.read(32)
    if (
        not head
        or head.startswith(b"PK\x03\x04")
        or (head[0] == 0x80 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
    ):
        return None
    # an ONNX ModelProto opens with field 1 (ir_version, a small varint), then another of its fields
    fields = b"\x12\x1a\x22\x28\x32\x3a\x42"
    if path.suffix == ".onnx" or (len(head) > 2 and head[0] == 0x08 and head[1] < 0x20 and head[2] in fields):
        return f"an ONNX model, not a checkpoint: {ONNX}"
    for magic, what, advice in OTHER_KINDS:
        if head.startswith(magic):
            return f"{what}, not a checkpoint: {advice.format(path=path)}"
    return f"not a checkpoint: {NOT_TORCH}"


def safe_load(path: Path, map_location="cpu"):
    """torch.load that never executes code (weights_only, plus argparse.Namespace, which timm's training
    checkpoints hold). UsageError naming the file for a file of another kind (an image, an ONNX model),
    a pickle that would call code, or a damaged file."""
    kind = file_kind(Path(path))
    if kind is not None:
        raise UsageError(f"{path}: {kind}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if culprit is None:  # torch's message would suggest loading it unsafely: say what it is instead
            raise UsageError(f"{path}: a pickle that holds no plain tensors, not a checkpoint") from None
        raise UsageError(
            f"{path}: refused: loading it would call {culprit[1]} (code in a pickle); only plain tensors are loaded"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UsageError(f"{path}: damaged or truncated file ({str(e).splitlines()[0][:120]})") from None


def load(path: str | Path, map_location="cpu") -> dict:
    """The payload of a checkpoint written by `save`. UsageError, naming the file, for a missing,
    truncated or damaged file, another format or version, or a pickle that would run code."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint")
    return checked(safe_load(path, map_location), path)


def checked(payload, path: Path) -> dict:
    """`payload`, read from `path`, when it is a checkpoint of a version read here, undamaged; else
    UsageError naming the file."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(
            f"{path}: not a checkpoint of resnet train; another library's weights load with "
            "create_model(NAME, weights=PATH), or resnet eval PATH --model NAME --data DATA"
        )
    if payload.get("version") not in READ_VERSIONS:
        raise UsageError(
            f"{path}: checkpoint format version {payload.get('version')} is not supported (this is {VERSION})"
        )
    if payload.get("digest") != digest(payload, payload["version"]):
        raise UsageError(f"{path}: damaged checkpoint (its contents do not match their digest)")
    return payload
