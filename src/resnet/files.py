"""Writing a set of files so that either all of them change or none does."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import UsageError, write_failed


def write_together(writers: dict[Path, Callable[[BinaryIO], object]]) -> None:
    """Each file by its writer into a temporary file beside it; only when all are written is each
    renamed into place, so a failure (a full disk) leaves the old files as they were and no temporary
    file behind. A full disk is a RunError, another unwritable place a UsageError; one line each."""
    tmps = {path: path.with_name(f".{path.name}.tmp{os.getpid()}") for path in writers}
    try:
        for path, write in writers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmps[path], "wb") as f:
                write(f)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    except OSError as e:
        culprit = Path(e.filename) if e.filename else next(iter(writers))
        if e.errno == errno.ENOSPC:
            raise write_failed(culprit, e, "nothing was changed") from None
        raise UsageError(f"{culprit}: cannot write ({e.strerror or e})") from None
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
