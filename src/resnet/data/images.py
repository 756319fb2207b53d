"""Decoding one image safely: every mode becomes 8-bit RGB, and a broken file is a UsageError
that names it instead of a traceback."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UsageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive)."""
    base = name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return 0 < dot < len(base) - 1 and base[dot:].lower() in IMAGE_EXTENSIONS  # Path(name).suffix, without a Path


def decode_image(source: bytes | str | Path, name: str | None = None) -> Image.Image:
    """The image in `source` (bytes or a path) as a fully loaded 8-bit RGB PIL image.

    Grayscale, palette, RGBA, CMYK and 16-bit images are converted. Zero-byte, truncated and
    non-image files and decompression bombs (more pixels than PIL's limit) raise UsageError
    naming `name` (default: the path).
    """
    name = name or str(source)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                return _to_rgb(image)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UsageError(f"{name}: refused, more pixels than the limit of {Image.MAX_IMAGE_PIXELS:,}") from None
    except UnidentifiedImageError:
        raise UsageError(f"{name}: not an image (or an empty file)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UsageError(f"{name}: unreadable image ({e})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit) integer grayscale: keep the top 8 bits of the 16-bit range.
        pixels = np.asarray(image, dtype=np.int64)
        image = Image.fromarray(np.clip(pixels >> 8, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB") if image.mode != "RGB" else image.copy()
