"""Images for super-resolution: high-resolution images from a folder or .tar(.gz) archive (any
sub-folders), split into train and test, and the low-resolution inputs made from them by bicubic
downscaling with Pillow.

[top/]train/**/*.jpg and [top/]test/**/*.jpg (or val/) are used as given; otherwise a fraction of
the images is held out as the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from ..data.cache import cached_arrays, fingerprint
from ..data.dataset import stratified_split
from ..data.folder import SPLIT_NAMES, is_archive, iter_archive, list_names
from ..data.images import decode_image
from ..errors import UsageError

BICUBIC = Image.Resampling.BICUBIC


@dataclass
class ImageSplits:
    """Decoded high-resolution images (HWC uint8) of each split, with their names."""

    source: str
    train: list[np.ndarray]
    test: list[np.ndarray]
    train_names: list[str]
    test_names: list[str]
    held_out: bool  # the test split was held out of the images by `test_fraction`


def load_images(path: str | Path, test_fraction: float = 0.1, seed: int = 0, cache: bool = True) -> ImageSplits:
    """The images under `path` (a folder or .tar/.tar.gz), decoded once (cached) and split.

    UsageError for a missing path, no images, or an unreadable image (naming it).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    names, _ = list_names(path)
    if not names:
        raise UsageError(f"{path}: no images found (looked for .jpg, .png, ... files in it and its sub-folders)")
    arrays = cached_arrays({"superres": fingerprint(path)}, lambda: _decode_all(path, names), cache)
    images = dict(zip(arrays["names"].tolist(), _unflatten(arrays["pixels"], arrays["shapes"])))
    train, test = _split_names(names)
    held_out = not test
    if held_out:
        train, test = _hold_out(path, train, test_fraction, seed)
    return ImageSplits(str(path), [images[n] for n in train], [images[n] for n in test], train, test, held_out)


def _decode_all(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Every image as HWC uint8, stored flat (pixels, shapes, names) so that sizes may differ."""
    blobs = iter_archive(path, set(names)) if is_archive(path) else ((n, _read(path / n)) for n in names)
    decoded = {name: np.asarray(decode_image(data, f"{path}/{name}")) for name, data in blobs}
    order = [n for n in names if n in decoded]
    return {
        "pixels": np.concatenate([decoded[n].ravel() for n in order]),
        "shapes": np.array([decoded[n].shape for n in order], dtype=np.int64),
        "names": np.array(order),
    }


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: unreadable ({e.strerror or e})") from None


def _unflatten(pixels: np.ndarray, shapes: np.ndarray) -> list[np.ndarray]:
    ends = np.cumsum(shapes.prod(1))
    return [chunk.reshape(shape) for chunk, shape in zip(np.split(pixels, ends[:-1]), shapes)]


def _split_names(names: list[str]) -> tuple[list[str], list[str]]:
    """(train, test) by split folders: train/ and test/ (else val/); all images as train without them."""
    by_split: dict[str | None, list[str]] = {}
    for name in names:
        folders = PurePosixPath(name).parts[:-1]
        split = next((SPLIT_NAMES[p.lower()] for p in folders if p.lower() in SPLIT_NAMES), None)
        by_split.setdefault(split, []).append(name)
    if "train" not in by_split:
        return names, []
    return by_split["train"], by_split.get("test") or by_split.get("val") or []


def _hold_out(path: Path, names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    if len(names) < 2:
        raise UsageError(f"{path}: {len(names)} image; at least 2 are needed to hold one out for testing")
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    kept, held = stratified_split(np.zeros(len(names)), count, seed)  # one class: a plain random draw
    return [names[i] for i in kept], [names[i] for i in held]


def check_sizes(images: list[np.ndarray], names: list[str], side: int, what: str) -> None:
    """UsageError naming the first image with a side shorter than `side`."""
    for name, image in zip(names, images):
        h, w = image.shape[:2]
        if min(h, w) < side:
            raise UsageError(f"{name} is {w}×{h}, smaller than the {side}×{side} {what}")


def modcrop(hr: np.ndarray, scale: int) -> np.ndarray:
    """`hr` cropped at the bottom and right to sides divisible by `scale` (the customary crop)."""
    h, w = hr.shape[:2]
    return hr[: h - h % scale, : w - w % scale]


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The low-resolution image: `hr` (sides divisible by `scale`) shrunk ×1/scale by Pillow's bicubic."""
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), BICUBIC))


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """`lr` enlarged ×scale by Pillow's bicubic: VDSR's input and the baseline to beat."""
    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * scale, h * scale), BICUBIC))


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HWC uint8 images of one size as an (N, 3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)


def to_image(x: torch.Tensor) -> np.ndarray:
    """A (3, H, W) tensor in [0, 1] as HWC uint8, clamped and rounded as an image file stores it."""
    return x.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


class PatchSampler:
    """Random training pairs: an HR patch of `patch_size` from a random image, randomly flipped and
    rotated by multiples of 90° (EDSR's augmentation), and the network input made from it."""

    def __init__(
        self, images: list[np.ndarray], patch_size: int, scale: int, upscaled_input: bool, augment: bool, seed: int
    ) -> None:
        self.images, self.patch_size, self.scale = images, patch_size, scale
        self.upscaled_input, self.augment = upscaled_input, augment
        self.rng = np.random.default_rng(seed)

    def patch(self) -> np.ndarray:
        image = self.images[self.rng.integers(len(self.images))]
        p, (h, w) = self.patch_size, image.shape[:2]
        y, x = self.rng.integers(h - p + 1), self.rng.integers(w - p + 1)
        hr = image[y : y + p, x : x + p]
        if self.augment:
            hr = np.rot90(hr[:, ::-1] if self.rng.random() < 0.5 else hr, self.rng.integers(4))
        return np.ascontiguousarray(hr)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets): `size` network inputs and their HR patches, float (N, 3, H, W) in [0, 1]."""
        hrs = [self.patch() for _ in range(size)]
        lrs = [downscale(hr, self.scale) for hr in hrs]
        inputs = [upscale_bicubic(lr, self.scale) for lr in lrs] if self.upscaled_input else lrs
        return to_tensor(inputs), to_tensor(hrs)


@dataclass
class HeldOutImage:
    """One held-out image: its name, the HR image (modcropped), its LR version and the bicubic upscaling."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    bicubic: np.ndarray


def held_out_images(splits: ImageSplits, scale: int, count: int) -> list[HeldOutImage]:
    """`count` held-out images (0: all), evenly spaced over the test split, with their LR and bicubic versions."""
    n = len(splits.test)
    picks = range(n) if not count or count >= n else np.unique(np.linspace(0, n - 1, count).round().astype(int))
    out = []
    for i in picks:
        hr = modcrop(splits.test[i], scale)
        lr = downscale(hr, scale)
        out.append(HeldOutImage(splits.test_names[i], hr, lr, upscale_bicubic(lr, scale)))
    return out
