"""Small real images for the super-resolution tests: smooth gradients, stripes and discs, so that there
is detail for a network to recover beyond bicubic."""

from pathlib import Path

import numpy as np
from PIL import Image

TINY_VDSR = {"num_layers": 4, "width": 16}  # a 4-layer VDSR: the tests' network
QUICK = {"patch_size": 16, "batch_size": 8, "evals": 3, "lr": 1e-3, "model_options": TINY_VDSR, "device": "cpu"}


def pattern(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """An HWC uint8 image: a color gradient, stripes of a random frequency and angle, and a disc."""
    y, x = np.mgrid[0:size, 0:size] / size
    angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 6)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)))
    base = np.stack([x, y, 1 - x], -1) * rng.uniform(0.3, 1, 3)
    cy, cx, r = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.1, 0.3)]
    disc = ((y - cy) ** 2 + (x - cx) ** 2 < r**2)[..., None] * rng.uniform(0, 1, 3)
    return (255 * np.clip(0.5 * base + 0.4 * stripes[..., None] + 0.3 * disc, 0, 1)).astype(np.uint8)


def write_images(folder: Path, count: int, size: int = 32, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"{i:02d}.png" for i in range(count)]
    for path in paths:
        Image.fromarray(pattern(rng, size)).save(path)
    return paths
