"""Batches for training and evaluation: `make_loader(data, split, cfg, ...)`.

One interface, two implementations. `TensorLoader` serves a decoded split (`ArrayDataset`) resident
on the training device: shuffling, cropping and flipping run batched there. `StreamLoader` decodes
a `FileList` in worker processes. Either has `steps_per_epoch`, `batches(start)` (training batches
from a step on), `eval_batches(batch_size, tta, scales)`, `sample()` (raw pixels for the
normalization's statistics), `normalize`, `eval_size` and `eval_resize`. Both are deterministic
functions of (seed, step): a resumed run sees exactly the batches it would have seen, and rank r of a
distributed run takes its own slice of every global batch. `Mixing` (mixup, cutmix) turns a training
batch's labels into class probabilities; the training loop applies it to either loader's batches.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import count

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import DataConfig
from ..errors import UsageError
from .augment import (
    Normalize,
    auto_augment_policy,
    center_crop,
    cutmix_box,
    image_transform,
    lighting,
    pad_crop_flip,
    policy_per_image,
    random_erase,
    resize_shorter,
    ten_crop,
)
from .dataset import ArrayDataset, FileList
from .images import decode_image

Batch = tuple[torch.Tensor, torch.Tensor]


def mix(*keys: int) -> int:
    """A 63-bit seed from non-negative integers (seed, purpose, epoch, step, ...), stable everywhere."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def _generator(*keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix(*keys))


SHUFFLE, AUGMENT, ERASE, MIX, POLICY, LIGHTING = range(6)  # what a generator is for


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=_generator(seed, SHUFFLE, epoch))


NORMALIZE_SAMPLE = 512  # streamed images whose statistics give the normalization
IMAGES_ONLY = {"augment": "none", "auto_augment": "none", "random_erase": 0.0, "cutmix": 0.0}  # keys and their "off"


def _lighting(x: torch.Tensor, std: float, seed: int, step: int, part: tuple[int, int]) -> torch.Tensor:
    """The training batch of `step` with its lighting noise (data.lighting; none when 0)."""
    return lighting(x, std, _generator(seed, LIGHTING, step), part) if std else x


def make_loader(
    data,
    split: str,
    cfg: DataConfig,
    *,
    train: bool,
    batch_size: int,
    device,
    normalize: Normalize | None = None,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    channels_last: bool = False,
):
    """The loader of `split` of `data` (a `load.Data`): training batches when `train` (augmented by
    `cfg.augment`), else only evaluation batches. `normalize=None` fits the normalization
    (`cfg.normalize`) to this split's pixels."""
    kind = TensorLoader if isinstance(data.splits[split], ArrayDataset) else StreamLoader
    loader = kind(
        data.splits[split],
        cfg,
        train=train,
        batch_size=batch_size,
        device=device,
        normalize=normalize,
        seed=seed,
        rank=rank,
        world=world,
        channels_last=channels_last,
    )
    if normalize is None:
        loader.normalize = Normalize.fit(loader.sample(), cfg.normalize == "pixel-mean").to(device)
    return loader


class TensorLoader:
    """Batches of a decoded split resident on `device`.

    Args:
        data: the split (uint8 images, or feature vectors).
        cfg: the data config; `augment` ("pad-crop-flip", "flip" or "none": tensors are cropped, not
            resized), `pad` and `lighting` are used when `train`.
        batch_size: images per process and step (the global batch is batch_size × world).
        train: False for a split only evaluated (it may be smaller than a batch).
    """

    eval_resize = 1.0  # decoded images are evaluated as they are

    def __init__(
        self,
        data: ArrayDataset,
        cfg: DataConfig,
        *,
        batch_size: int,
        device,
        normalize: Normalize | None = None,
        train: bool = True,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        channels_last: bool = False,
    ) -> None:
        augment = cfg.augment if train else "none"
        if data.images.ndim != 4 and train:
            for key, off in IMAGES_ONLY.items():
                if (value := getattr(cfg, key)) != off:
                    raise UsageError(
                        f"data.{key}={value} needs images; these data are feature vectors (data.{key}={off})"
                    )
        if augment not in ("pad-crop-flip", "flip", "none"):
            raise UsageError(
                f"data.augment={augment} needs data.mode=stream (decoded tensors are cropped, not resized)"
            )
        if cfg.eval_size and data.images.ndim == 4 and cfg.eval_size != data.images.shape[-1]:
            raise UsageError(
                f"data.eval_size={cfg.eval_size} needs data.mode=stream (decoded tensors are evaluated as "
                f"they are, {'×'.join(map(str, data.images.shape[2:]))}, not resized)"
            )
        self.lighting = cfg.lighting if train else 0
        if self.lighting and (data.images.ndim != 4 or data.images.shape[1] != 3):
            raise UsageError("data.lighting shifts RGB colors: it needs RGB images (data.lighting=0)")
        self.eval_size = cfg.image_size
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size, self.device = batch_size, torch.device(device)
        self.normalize = (normalize or Normalize.identity()).to(device)
        self.augment, self.pad, self.seed, self.rank, self.world = augment, cfg.pad, seed, rank, world
        self.cfg, self.policy = cfg, auto_augment_policy(cfg) if train else None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.steps_per_epoch = len(data) // (batch_size * world)
        if train and self.steps_per_epoch == 0:
            raise UsageError(
                f"batch_size={batch_size} (× {world} processes) is larger than the {len(data)} training images"
            )
        self._epoch, self._perm = -1, None

    def sample(self) -> torch.Tensor:
        """Every item of the split, as stored (uint8 pixels or features), on the CPU."""
        return self.images.cpu()

    def batch(self, step: int) -> Batch:
        """The training batch of `step`: shuffled each epoch, augmented, normalized."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_permutation(len(self.labels), self.seed, epoch).to(self.device)
        start = (i * self.world + self.rank) * self.batch_size
        index = self._perm[start : start + self.batch_size]
        x = self.images[index]
        part = (self.rank * self.batch_size, self.world * self.batch_size)
        if self.augment != "none":
            pad = self.pad if self.augment == "pad-crop-flip" else 0
            x = pad_crop_flip(x, pad, _generator(self.seed, AUGMENT, step), part=part)
        if self.policy is not None:
            x = policy_per_image(x, self.policy, _generator(self.seed, POLICY, step), part)
        x = _lighting(x, self.lighting, self.seed, step, part)
        return erase(self._finish(x), self.cfg, self.seed, step, part), self.labels[index]

    def batches(self, start: int = 0) -> Iterator[Batch]:
        for step in count(start):
            yield self.batch(step)

    def eval_batches(self, batch_size: int | None = None, tta: str = "none", scales=None) -> Iterator[Batch]:
        """The whole split in order, unaugmented; `tta="10crop"` yields (10, N, ...) views of the padded images."""
        if tta == "multiscale":
            raise UsageError(
                "multi-scale testing resizes whole images: it needs image files streamed (data.mode=stream); "
                "these images are decoded into tensors of one size"
            )
        batch_size = batch_size or self.batch_size
        for start in range(self.rank * batch_size, len(self.labels), batch_size * self.world):
            x, y = self.images[start : start + batch_size], self.labels[start : start + batch_size]
            if tta == "10crop":
                pad = self.pad
                padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
                yield torch.stack([self._finish(v) for v in ten_crop(padded, x.shape[-1])]), y
            else:
                yield self._finish(x), y

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x


def erase(x: torch.Tensor, cfg: DataConfig, seed: int, step: int, part: tuple[int, int]) -> torch.Tensor:
    """Random erasing (data.random_erase) of the normalized training batch of `step`."""
    if not cfg.random_erase:
        return x
    return random_erase(x, cfg.random_erase, cfg.erase_area, cfg.erase_ratio, _generator(seed, ERASE, step), part)


class Mixing:
    """Mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019) of training batches, as timm's Mixup with
    mode "batch": a share `mix_prob` of the batches is mixed, each by one of them (cutmix with
    probability `switch_prob` when both are on), with one λ ~ Beta(α, α) for the batch. Each image is
    mixed with its neighbour in the shuffled batch (0↔1, 2↔3, …), so that a process's slice of even
    size mixes as the whole batch would. Cutmix pastes the neighbour's box (`cutmix_box`) and takes
    λ = the share of the image left uncovered (timm's correct_lam). The draws are a function of (seed,
    step): a resumed run mixes as it would have, and every process of a distributed run alike."""

    def __init__(self, cfg: DataConfig, classes: int, seed: int) -> None:
        self.mixup, self.cutmix, self.prob, self.switch = cfg.mixup, cfg.cutmix, cfg.mix_prob, cfg.switch_prob
        self.classes, self.seed = classes, seed

    def draw(self, step: int, height: int, width: int) -> tuple[str, float, tuple[int, int, int, int] | None]:
        """(kind, λ, box) of `step`'s batch: kind "none", "mixup" or "cutmix"; cutmix's box (top,
        bottom, left, right) in images of height × width."""
        if not (self.mixup or self.cutmix):
            return "none", 1.0, None
        rng = np.random.default_rng(mix(self.seed, MIX, step))  # NumPy's: torch has no seeded Beta sampler
        if rng.random() >= self.prob:
            return "none", 1.0, None
        cut = self.cutmix > 0 and (self.mixup == 0 or rng.random() < self.switch)
        lam = float(rng.beta(*[self.cutmix if cut else self.mixup] * 2))
        if not cut:
            return "mixup", lam, None
        top, bottom, left, right = box = cutmix_box(height, width, lam, rng)
        return "cutmix", 1 - (bottom - top) * (right - left) / (height * width), box

    def __call__(self, x: torch.Tensor, labels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch (x, labels) of `step` mixed: images and class probabilities (N, classes); an
        unmixed batch keeps its labels."""
        kind, lam, box = self.draw(step, *x.shape[-2:])
        if kind == "none":
            return x, labels
        n = len(x)
        partner = (torch.arange(n, device=x.device) ^ 1).clamp_(max=n - 1)  # an odd batch's last: itself
        if kind == "mixup":
            x = torch.lerp(x[partner], x, lam)  # λ x + (1 - λ) x[partner]
        else:
            top, bottom, left, right = box
            x = x.clone()
            x[:, :, top:bottom, left:right] = x[partner, :, top:bottom, left:right]
        targets = F.one_hot(labels, self.classes).float()
        return x, torch.lerp(targets[partner], targets, lam)


class _EpochSampler(Sampler):
    """(epoch, index) pairs of one rank, from `start` within the epoch: the data set seeds each
    image's augmentation by them, so the workers' scheduling changes nothing."""

    def __init__(self, n: int, batch_size: int, world: int, rank: int, seed: int, epoch: int, start: int) -> None:
        self.n, self.batch_size, self.world, self.rank = n, batch_size, world, rank
        self.seed, self.epoch, self.start = seed, epoch, start

    def __iter__(self):
        perm = epoch_permutation(self.n, self.seed, self.epoch).tolist()
        steps = self.n // (self.batch_size * self.world)
        for i in range(self.start, steps):
            offset = (i * self.world + self.rank) * self.batch_size
            for index in perm[offset : offset + self.batch_size]:
                yield self.epoch, index

    def __len__(self) -> int:
        return (self.n // (self.batch_size * self.world) - self.start) * self.batch_size


class _FileDataset(Dataset):
    """Decoded, transformed images of a file list; `train=False` gives the evaluation view of `size`
    (default: the image size): the shorter side resized to `size × eval_resize`, a center crop of
    `eval_crop` (default: `size`); or with `scales` the whole image at each of these shorter sides."""

    def __init__(
        self,
        data: FileList,
        cfg: DataConfig,
        seed: int,
        train: bool,
        size: int | None = None,
        eval_crop: int | None = None,
        scales: list[int] | None = None,
    ):
        self.data, self.cfg, self.seed, self.train = data, cfg, seed, train
        self.size, self.eval_crop, self.scales = size or cfg.image_size, eval_crop, scales
        self.policy = auto_augment_policy(cfg) if train else None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key):
        epoch, index = key if self.train else (0, key)
        name, label = self.data.files[index]
        rng = random.Random(mix(self.seed, AUGMENT, epoch, index)) if self.train else None
        try:
            image = decode_image(self.data.layout.read(name), name)
        except OSError as e:
            raise UsageError(f"{name}: unreadable ({e.strerror or e})") from None
        if self.train:
            image = image_transform(image, self.cfg.augment, self.cfg.image_size, rng, self.cfg, self.policy)
        elif self.scales:
            return [_tensor(resize_shorter(image, side)) for side in self.scales], label
        else:
            shorter = round(self.size * self.cfg.eval_resize)
            image = center_crop(resize_shorter(image, shorter), self.eval_crop or self.size)
        return _tensor(image), label


def _tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())


class StreamLoader:
    """Batches of a split of image files decoded and augmented (`cfg.augment`, when `train`) by
    `cfg.workers` processes, lit (`cfg.lighting`) and normalized on `device`. Evaluation views of
    `eval_size` (`cfg.eval_size`, default `image_size`) are resized to `eval_size × cfg.eval_resize`
    on the shorter side and center-cropped."""

    def __init__(
        self,
        data: FileList,
        cfg: DataConfig,
        *,
        batch_size: int,
        device,
        normalize: Normalize | None = None,
        train: bool = True,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        channels_last: bool = False,
    ) -> None:
        self.dataset = _FileDataset(data, cfg, seed, train)
        self.batch_size, self.device = batch_size, torch.device(device)
        self.normalize = (normalize or Normalize.identity()).to(device)
        self.seed, self.rank, self.world, self.workers = seed, rank, world, cfg.workers
        self.eval_size, self.eval_resize = cfg.eval_size or cfg.image_size, cfg.eval_resize
        self.lighting = cfg.lighting if train else 0
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.steps_per_epoch = len(data) // (batch_size * world)
        if train and self.steps_per_epoch == 0:
            raise UsageError(
                f"batch_size={batch_size} (× {world} processes) is larger than the {len(data)} training images"
            )

    def sample(self) -> torch.Tensor:
        """The evaluation views (uint8) of about NORMALIZE_SAMPLE images spread over the split."""
        d = self.dataset
        every = FileList(d.data.layout, d.data.files[:: max(1, len(d) // NORMALIZE_SAMPLE)])
        loader = DataLoader(_FileDataset(every, d.cfg, d.seed, train=False), batch_size=64, num_workers=self.workers)
        return torch.cat([x for x, _ in loader])

    def _loader(self, sampler) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.workers else None,
        )

    def batches(self, start: int = 0) -> Iterator[Batch]:
        epoch, offset = divmod(start, self.steps_per_epoch)
        steps, part = count(start), (self.rank * self.batch_size, self.world * self.batch_size)
        while True:
            sampler = _EpochSampler(len(self.dataset), self.batch_size, self.world, self.rank, self.seed, epoch, offset)
            for (x, y), step in zip(self._loader(sampler), steps):
                x = _lighting(x.to(self.device, non_blocking=True), self.lighting, self.seed, step, part)
                x = erase(self._finish(x), self.dataset.cfg, self.seed, step, part)
                yield x, y.to(self.device, non_blocking=True)
            epoch, offset = epoch + 1, 0

    def eval_batches(
        self, batch_size: int | None = None, tta: str = "none", scales: list[int] | None = None
    ) -> Iterator[Batch]:
        """The whole split in order, as evaluation views; `tta="10crop"` yields (10, N, ...) views, and
        `tta="multiscale"` one image at a time, as a list of (1, 3, H, W) views: the whole image at
        each shorter side of `scales` (§3.4's: `augment.multiscale_sizes`)."""
        d, size = self.dataset, self.eval_size
        crop = round(size * d.cfg.eval_resize) if tta == "10crop" else None
        if tta == "multiscale":  # images of their own shapes: one at a time
            batch_size = 1
        dataset = _FileDataset(d.data, d.cfg, d.seed, False, size, crop, scales if tta == "multiscale" else None)
        indices = list(range(self.rank, len(dataset), self.world))
        loader = DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            sampler=indices,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            y = y.to(self.device, non_blocking=True)
            if tta == "10crop":
                yield torch.stack([self._finish(v) for v in ten_crop(x.to(self.device), size)]), y
            elif tta == "multiscale":
                yield [self._finish(v) for v in x], y
            else:
                yield self._finish(x), y

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return self.normalize(x).contiguous(memory_format=self.memory_format)
