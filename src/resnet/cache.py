"""The cache folder, where downloads, decoded data sets and model descriptions are kept."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$RESNET_CACHE, else $XDG_CACHE_HOME/resnet, else ~/.cache/resnet."""
    if "RESNET_CACHE" in os.environ:
        return Path(os.environ["RESNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "resnet"
