"""Augmentation and normalization. Batched on the training device for decoded tensors (the paper's
CIFAR augmentation), and per image with Pillow for streamed files (scale augmentation of §3.4,
random-resized-crop). Random erasing and lighting are batched on the device in both, as is the mixing
of mixup and cutmix (`mixing.Mixing`, with `cutmix_box` from here); RandAugment and TrivialAugment
are torchvision's, per image."""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import UsageError


def pad_crop_flip(
    images: torch.Tensor, pad: int, generator: torch.Generator, flip: bool = True, part: tuple[int, int] | None = None
) -> torch.Tensor:
    """§4.2: pad `pad` zero pixels on each side, take a random crop of the original size, flip
    half of the images horizontally. One gather over the whole batch (N, C, H, W), any dtype.

    `part=(offset, total)`: the images are items offset... of a batch of `total` (a process's slice
    of a distributed batch); they get the random draws of those items, as in one process.
    """
    n, _, h, w = images.shape
    offset, total = part or (0, n)
    shifts = to_device(torch.randint(0, 2 * pad + 1, (total, 2), generator=generator)[offset : offset + n], images)
    flips = to_device((torch.rand(total, generator=generator) < 0.5)[offset : offset + n], images) if flip else None
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    rows = shifts[:, :1] + torch.arange(h, device=images.device)
    cols = shifts[:, 1:] + torch.arange(w, device=images.device)
    if flips is not None:
        cols = torch.where(flips[:, None], cols.flip(1), cols)  # the flip is a reversed column order
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_erase(
    images: torch.Tensor,
    p: float,
    area: list[float],
    ratio: list[float],
    generator: torch.Generator,
    part: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017) as torchvision's RandomErasing(p, area, ratio, value=0), batched:
    each image of (N, C, H, W), with probability `p`, gets a box set to 0 (after normalization: the
    data's mean) whose area is a uniform fraction in `area` of the image and whose aspect ratio (height
    / width) is log-uniform in `ratio`, the first of 10 tries that fits inside; if none fits, none is
    erased. `part` as in pad_crop_flip."""
    n, _, h, w = images.shape
    offset, total = part or (0, n)
    tries = 10
    erase = torch.rand(total, generator=generator) < p
    target = torch.empty(total, tries).uniform_(*area, generator=generator) * (h * w)
    aspect = torch.empty(total, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    heights, widths = (target * aspect).sqrt().round(), (target / aspect).sqrt().round()
    fits = (heights < h) & (widths < w)
    first = fits.int().argmax(1, keepdim=True)  # the first try that fits
    heights, widths = heights.gather(1, first)[:, 0], widths.gather(1, first)[:, 0]
    top = (torch.rand(total, generator=generator) * (h - heights + 1)).floor()
    left = (torch.rand(total, generator=generator) * (w - widths + 1)).floor()
    boxes = torch.stack([top, top + heights, left, left + widths], 1).masked_fill(~(erase & fits.any(1))[:, None], 0)
    top, bottom, left, right = to_device(boxes[offset : offset + n], images).unbind(1)
    rows, cols = torch.arange(h, device=images.device), torch.arange(w, device=images.device)
    inside_rows = (rows >= top[:, None]) & (rows < bottom[:, None])
    inside_cols = (cols >= left[:, None]) & (cols < right[:, None])
    return images.masked_fill((inside_rows[:, :, None] & inside_cols[:, None, :])[:, None], 0)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Cutmix's box (top, bottom, left, right) for λ: sides √(1 - λ) of the image's around a uniform
    center, clipped to the image (as in Yun et al.'s code and timm's)."""
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    y, x = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(y - cut_h // 2, 0), min(y + cut_h // 2, height)
    left, right = max(x - cut_w // 2, 0), min(x + cut_w // 2, width)
    return top, bottom, left, right


# Krizhevsky et al. 2012 (§4.1), "the standard color augmentation" of §3.4: the principal components of
# ImageNet's RGB pixel values, for pixels in [0, 1] (fb.resnet.torch's values)
IMAGENET_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
IMAGENET_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])


def lighting(
    images: torch.Tensor, std: float, generator: torch.Generator, part: tuple[int, int] | None = None
) -> torch.Tensor:
    """AlexNet's PCA lighting noise: to every pixel of each image (N, 3, H, W) of 0-255 values the same
    RGB shift, 255 · eigvec @ (alpha · eigval) with alpha ~ N(0, std²) drawn per image and component.
    Returns float images (the noise is not clipped, as in AlexNet and fb.resnet.torch). `part` as in
    `pad_crop_flip`."""
    n = len(images)
    offset, total = part or (0, n)
    alpha = torch.randn(total, 3, generator=generator)[offset : offset + n] * std
    shift = 255 * (alpha * IMAGENET_EIGVAL) @ IMAGENET_EIGVEC.T  # row k: Σ_j eigvec[:, j] · alpha[k, j] · eigval[j]
    return images.float() + to_device(shift, images)[:, :, None, None]


def to_device(draws: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Random draws made on the CPU (the same on every device), copied to `like`'s device. To a GPU the
    copy goes through pinned memory and does not wait: a plain copy from pageable memory would
    synchronize the host with the GPU at every step."""
    if like.device.type != "cuda":
        return draws.to(like.device)
    return draws.pin_memory().to(like.device, non_blocking=True)


def ten_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The 4 corner and the center crops of `size`, and their mirror images: (10, N, C, size, size)."""
    _, _, h, w = images.shape
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    crops = [images[:, :, top : top + size, left : left + size] for top, left in corners]
    return torch.stack(crops + [c.flip(3) for c in crops])


# §3.4's multi-scale testing: the shorter sides for 224×224 training crops (scaled for other crops)
MULTISCALE = (224, 256, 384, 480, 640)


def multiscale_sizes(image_size: int) -> list[int]:
    """The shorter sides of §3.4's multi-scale testing for a network trained on `image_size` crops."""
    return [round(side * image_size / 224) for side in MULTISCALE]


class Normalize:
    """(x - mean) / std on 0-255 pixel values, as float; `mean` (C,1,1) per channel or (C,H,W) per pixel."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean.float(), std.float()

    @classmethod
    def identity(cls) -> Normalize:
        """The raw values as float: mean 0, standard deviation 1."""
        return cls(torch.zeros(()), torch.ones(()))

    @classmethod
    def fit(cls, images: torch.Tensor, per_pixel: bool) -> Normalize:
        """Statistics of training images (N, C, H, W): the mean image (per_pixel) or the channel means,
        and the channel standard deviations. A constant channel keeps a standard deviation of 1."""
        x = images.double()
        mean = x.mean(dim=0) if per_pixel else x.mean(dim=(0, 2, 3)).view(-1, 1, 1)
        return cls._of(mean, x.std(dim=(0, 2, 3)).view(-1, 1, 1))

    @classmethod
    def fit_features(cls, features: torch.Tensor) -> Normalize:
        """Statistics of training feature vectors (N, D): each feature's mean and standard deviation.
        A constant feature keeps a standard deviation of 1."""
        x = features.double()
        return cls._of(x.mean(dim=0), x.std(dim=0))

    @classmethod
    def _of(cls, mean: torch.Tensor, std: torch.Tensor) -> Normalize:
        return cls(mean, torch.where(std > 1e-6, std, torch.ones_like(std)))

    def to(self, device) -> Normalize:
        return Normalize(self.mean.to(device), self.std.to(device))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = self.mean
        if mean.ndim == 3 and mean.shape[-2:] != images.shape[-2:] and mean.shape[-1] != 1:
            mean = mean.mean(dim=(1, 2), keepdim=True)  # per-pixel mean on another size: its channel means
        return (images.float() - mean) / self.std

    def state_dict(self) -> dict:
        return {"mean": self.mean.cpu(), "std": self.std.cpu()}


# Per-image transforms of streamed files: each returns an RGB image of exactly size×size.


def resize_shorter(image: Image.Image, shorter: int) -> Image.Image:
    w, h = image.size
    scale = shorter / min(w, h)
    return image.resize((max(shorter, round(w * scale)), max(shorter, round(h * scale))), Image.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def random_crop(image: Image.Image, size: int, rng: random.Random) -> Image.Image:
    left, top = rng.randint(0, image.width - size), rng.randint(0, image.height - size)
    return image.crop((left, top, left + size, top + size))


def scale_augment(image: Image.Image, size: int, shorter: tuple[float, float], rng: random.Random) -> Image.Image:
    """§3.4: the shorter side resized to a random length in `shorter` (e.g. [256, 480]), a random crop."""
    return random_crop(resize_shorter(image, round(rng.uniform(*shorter))), size, rng)


def random_resized_crop(image: Image.Image, size: int, area: tuple[float, float], rng: random.Random) -> Image.Image:
    """A crop of random area fraction in `area` and aspect ratio in [3/4, 4/3], resized to size×size."""
    w, h = image.size
    for _ in range(10):
        target = w * h * rng.uniform(*area)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return image.resize((size, size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    return center_crop(resize_shorter(image, size), size)  # fallback, as torchvision does


def image_transform(
    image: Image.Image,
    rng: random.Random,
    *,
    augment: str,
    size: int,
    pad: int,
    scale: tuple[float, float],
    area: tuple[float, float],
    policy=None,
) -> Image.Image:
    """The training view of one streamed image by `augment` (data.augment, with its `pad`, `scale` or
    `area`), size×size, then `policy` (auto_augment_policy's)."""
    if augment == "scale":
        image = scale_augment(image, size, scale, rng)
    elif augment == "random-resized-crop":
        image = random_resized_crop(image, size, area, rng)
    elif augment == "pad-crop-flip":
        padded = Image.new("RGB", (size + 2 * pad, size + 2 * pad))
        padded.paste(center_crop(resize_shorter(image, size), size), (pad, pad))
        image = random_crop(padded, size, rng)
    else:
        image = center_crop(resize_shorter(image, size), size)
    if augment != "none" and rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if policy is not None:
        image = apply_policy(policy, [image], [rng.getrandbits(62)])[0]
    return image


# RandAugment and TrivialAugment: torchvision's own (an optional dependency: it pins torch exactly).


def auto_augment_policy(name: str, ops: int = 2, magnitude: int = 9):
    """torchvision's transform of data.auto_augment `name`, bilinear as in torchvision's ImageNet recipe:
    RandAugment (Cubuk et al. 2020) with N = `ops` and M = `magnitude` (of 31 levels), or
    TrivialAugmentWide (Müller & Hutter 2021); None for "none". UsageError when torchvision is missing
    or does not load."""
    if name == "none":
        return None
    transforms = _torchvision_transforms(f"data.auto_augment={name}")
    bilinear = transforms.InterpolationMode.BILINEAR
    if name == "randaugment":
        return transforms.RandAugment(ops, magnitude, interpolation=bilinear)
    return transforms.TrivialAugmentWide(interpolation=bilinear)


def _torchvision_transforms(setting: str):
    try:
        from torchvision import transforms
    except (ImportError, RuntimeError, OSError) as e:  # RuntimeError: a build for another torch fails to load
        version, minor = torch.__version__, int(torch.__version__.split(".")[1])
        build = "; its CPU build, from the index that torch came from" if "+cpu" in version else ""
        found = "" if isinstance(e, ImportError) else f"; the installed one does not load with this torch ({e})"
        raise UsageError(  # torchvision 0.(N+15) is the release made for torch 2.N
            f"{setting} needs torchvision: pip install torchvision==0.{minor + 15}.* (the release for torch "
            f"{version}{build}), or pip install 'resnet[augment]' to let pip choose torch too{found}"
        ) from None
    return transforms


def apply_policy(policy, images: list, seeds: list[int]) -> list:
    """`policy` applied to each image (PIL, or a uint8 (C, H, W) tensor) with the draws of torch's
    generator seeded by its seed (torchvision's transforms draw from the global one); the global
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        out = []
        for image, seed in zip(images, seeds):
            torch.default_generator.manual_seed(seed)
            out.append(policy(image))
        return out


def policy_per_image(
    images: torch.Tensor, policy, generator: torch.Generator, part: tuple[int, int] | None = None
) -> torch.Tensor:
    """`policy` applied to each image of a uint8 batch (N, C, H, W): torchvision draws one operation per
    call, so a call per image. On the CPU, whatever the device of `images` (the results are the same
    on every device); a seed per image from `generator`, `part` as in pad_crop_flip."""
    n = len(images)
    offset, total = part or (0, n)
    seeds = torch.randint(2**62, (total,), generator=generator)[offset : offset + n].tolist()
    return to_device(torch.stack(apply_policy(policy, list(images.cpu()), seeds)), images)
