"""Batches for training and evaluation: `make_loader(data, split, cfg, normalize=..., ...)`.

One interface, one base class (`Loader`), a loader for each kind of data (`LOADERS`): `TensorLoader`
serves decoded images resident on the training device, where shuffling, cropping and flipping run
batched; `FeatureLoader` serves feature vectors likewise; `StreamLoader` decodes image files in worker
processes. Each has `steps_per_epoch`, `batches(start)` (training batches from a step on),
`eval_batches(batch_size, tta, scales)`, `normalize`, `eval_size` and `eval_resize`, and states the
data settings it `supports`. The normalization is fitted before a loader is built
(`fit_normalize`). Batches are deterministic functions of (seed, step): a resumed run sees exactly
the batches it would have seen, and rank r of a distributed run takes its own slice of every global
batch.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from itertools import count
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from ..config import DataConfig, check_supported
from ..errors import UsageError
from .augment import (
    Normalize,
    auto_augment_policy,
    center_crop,
    image_transform,
    lighting,
    pad_crop_flip,
    policy_per_image,
    random_erase,
    resize_shorter,
    ten_crop,
)
from .dataset import FEATURES, FILES, IMAGES, ArrayDataset, FileList, Split
from .images import decode_image
from .seeds import AUGMENT, ERASE, LIGHTING, POLICY, derive_seed, epoch_permutation, generator

Batch = tuple[torch.Tensor, torch.Tensor]

NORMALIZE_SAMPLE = 512  # streamed images whose statistics give the normalization
IMAGES_ONLY = {"augment": "none", "auto_augment": "none", "random_erase": 0.0, "cutmix": 0.0}  # keys and their "off"
TRAINING_ONLY = {**IMAGES_ONLY, "lighting": 0.0}  # augmentations that an evaluation loader leaves off
RGB_ONLY = "data.lighting shifts RGB colors: it needs RGB images (data.lighting=0)"


def make_loader(
    data,
    split: str,
    cfg: DataConfig,
    *,
    train: bool,
    batch_size: int,
    device,
    normalize: Normalize,
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    channels_last: bool = False,
) -> Loader:
    """The loader of `split` of `data` (a `sources.Data`), of the data's kind: training batches when
    `train` (augmented as `cfg` says), else only evaluation batches; `normalize` from `fit_normalize`
    (or a checkpoint's, or pre-trained weights')."""
    return LOADERS[data.kind](
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


def fit_normalize(data, split: str, cfg: DataConfig) -> Normalize:
    """The normalization (`cfg.normalize`) fitted to `split` of `data` by the loader of its kind."""
    return LOADERS[data.kind].fit_normalize(data.splits[split], cfg)


class Loader:
    """What every loader shares: its settings, its slice of each global batch, the steps of an epoch,
    and the last steps of a batch on the device (lighting, normalization, random erasing).

    Args:
        split: the items (a split of `sources.Data`, of this loader's kind).
        cfg: the data settings; refused (`config.check_supported`) where the loader does not `support`
            them. An evaluation loader (`train=False`) leaves the training augmentations off.
        batch_size: items per process and step (the global batch is batch_size × world).
        normalize: the normalization, fitted before (`fit_normalize`); default none.
        train: False for a split only evaluated (it may be smaller than a batch).
        channels_last: image batches in NHWC memory format.
    """

    eval_resize = 1.0  # an evaluation view's shorter side, as a multiple of its crop: as they are
    channels = True  # the items are images, whose channels channels_last puts last
    skipped: frozenset[str] | set[str] = frozenset()  # the unreadable files left out as met (streamed files)

    @classmethod
    def supports(cls, split: Split) -> dict[str, tuple[tuple, str]]:
        """The data settings this loader takes only some values of: {key: (values, refusal of others)}."""
        return {}

    @classmethod
    def fit_normalize(cls, split: Split, cfg: DataConfig) -> Normalize:
        """The normalization (`cfg.normalize`) fitted to the pixels of `split`."""
        return Normalize.fit(cls.sample(split, cfg), per_pixel=cfg.normalize == "pixel-mean")

    @classmethod
    def sample(cls, split: Split, cfg: DataConfig) -> torch.Tensor:
        """The uint8 pixels that the normalization is fitted to."""
        raise NotImplementedError

    def __init__(
        self,
        split: Split,
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
        cfg = cfg if train else replace(cfg, **TRAINING_ONLY)
        check_supported(cfg, self.supports(split))
        self.cfg, self.batch_size, self.device = cfg, batch_size, torch.device(device)
        self.normalize = (normalize or Normalize.identity()).to(device)
        self.seed, self.rank, self.world = seed, rank, world
        self.part = (rank * batch_size, world * batch_size)  # this process's slice of a global batch
        self.memory_format = torch.channels_last if channels_last and self.channels else torch.contiguous_format
        self._take(split)
        self.steps_per_epoch = len(split) // (batch_size * world)
        if train and self.steps_per_epoch == 0:
            raise UsageError(
                f"batch_size={batch_size} (× {world} processes) is larger than the {len(split)} training images: "
                f"--set batch_size={len(split) // world * world} or less"
            )

    def _take(self, split: Split) -> None:
        """Keep what this kind of loader needs of `split` and `self.cfg`."""
        raise NotImplementedError

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the device, normalized, in the memory format."""
        x = self.normalize(x.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=self.memory_format)

    def _finish_training(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """The training batch of `step` lit (data.lighting), finished, then erased (data.random_erase)."""
        cfg = self.cfg
        if cfg.lighting:
            x = lighting(x, cfg.lighting, generator(self.seed, LIGHTING, step), self.part)
        x = self._finish(x)
        if cfg.random_erase:
            erase = generator(self.seed, ERASE, step)
            x = random_erase(x, cfg.random_erase, cfg.erase_area, cfg.erase_ratio, erase, self.part)
        return x


class TensorLoader(Loader):
    """Batches of decoded images resident on `device`: shuffled, cropped and flipped (data.augment:
    "pad-crop-flip", "flip" or "none"; tensors are cropped, not resized) there, and RandAugment or
    TrivialAugment per image."""

    AUGMENTS = ("pad-crop-flip", "flip", "none")

    @classmethod
    def supports(cls, split: ArrayDataset) -> dict[str, tuple[tuple, str]]:
        shape = "×".join(map(str, split.images.shape[2:]))
        return {
            "augment": (
                cls.AUGMENTS,
                "data.augment={value} needs data.mode=stream (decoded tensors are cropped, not resized)",
            ),
            "eval_size": (
                (0, split.images.shape[-1]),
                "data.eval_size={value} needs data.mode=stream "
                f"(decoded tensors are evaluated as they are, {shape}, not resized)",
            ),
        }

    @classmethod
    def sample(cls, split: ArrayDataset, cfg: DataConfig) -> torch.Tensor:
        """Every image of the split."""
        return split.images

    def _take(self, split: ArrayDataset) -> None:
        cfg = self.cfg
        self.images, self.labels = split.images.to(self.device), split.labels.to(self.device)
        self.policy = auto_augment_policy(cfg.auto_augment, cfg.randaugment_ops, cfg.randaugment_magnitude)
        self.eval_size = cfg.image_size
        self._epoch, self._perm = -1, None

    def batch(self, step: int) -> Batch:
        """The training batch of `step`: shuffled each epoch, augmented, normalized."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_permutation(len(self.labels), self.seed, epoch).to(self.device)
        start = (i * self.world + self.rank) * self.batch_size
        index = self._perm[start : start + self.batch_size]
        x, augment = self.images[index], self.cfg.augment
        if augment != "none":
            pad = self.cfg.pad if augment == "pad-crop-flip" else 0
            x = pad_crop_flip(x, pad, generator(self.seed, AUGMENT, step), part=self.part)
        if self.policy is not None:
            x = policy_per_image(x, self.policy, generator(self.seed, POLICY, step), self.part)
        return self._finish_training(x, step), self.labels[index]

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
                pad = self.cfg.pad
                padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
                yield torch.stack([self._finish(v) for v in ten_crop(padded, x.shape[-1])]), y
            else:
                yield self._finish(x), y


class FeatureLoader(TensorLoader):
    """Batches of feature vectors (N, D) resident on `device`, shuffled as TensorLoader's; vectors take
    no image augmentation, and each feature is normalized on its own."""

    channels = False

    @classmethod
    def supports(cls, split: ArrayDataset) -> dict[str, tuple[tuple, str]]:
        images_only = {
            key: ((off,), f"data.{key}={{value}} needs images; these data are feature vectors (data.{key}={off})")
            for key, off in IMAGES_ONLY.items()
        }
        return {**images_only, "lighting": ((0,), RGB_ONLY)}

    @classmethod
    def fit_normalize(cls, split: ArrayDataset, cfg: DataConfig) -> Normalize:
        return Normalize.fit_features(split.images)


class StreamLoader(Loader):
    """Batches of a split of image files decoded and augmented (data.augment, any of them) by
    `cfg.workers` processes, then lit, normalized and erased on `device`. Evaluation views of
    `eval_size` (data.eval_size, default image_size) are resized to `eval_size × eval_resize` on the
    shorter side and center-cropped."""

    @classmethod
    def sample(cls, split: FileList, cfg: DataConfig) -> torch.Tensor:
        """The evaluation views of about NORMALIZE_SAMPLE images spread over the split."""
        every = FileList(split.layout, split.files[:: max(1, len(split) // NORMALIZE_SAMPLE)])
        view = partial(_evaluation_view, shorter=round(cfg.image_size * cfg.eval_resize), crop=cfg.image_size)
        dataset = _FileDataset(every, view, skip_bad=cfg.skip_bad_images)
        loader = DataLoader(dataset, batch_size=64, num_workers=usable_workers(cfg.workers), collate_fn=_collate)
        return torch.cat([batch[0] for batch, _ in unwrapped(loader) if batch is not None])

    def _take(self, split: FileList) -> None:
        cfg = self.cfg
        policy = auto_augment_policy(cfg.auto_augment, cfg.randaugment_ops, cfg.randaugment_magnitude)
        transform = dict(augment=cfg.augment, size=cfg.image_size, pad=cfg.pad, scale=tuple(cfg.scale))
        view = partial(_training_view, **transform, area=tuple(cfg.area), policy=policy)
        self.files, self.dataset = split, _FileDataset(split, view, self.seed, True, cfg.skip_bad_images)
        self.skipped = set()
        self.workers, self.eval_size, self.eval_resize = (
            usable_workers(cfg.workers),
            cfg.eval_size or cfg.image_size,
            cfg.eval_resize,
        )

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        return DataLoader(
            dataset, num_workers=self.workers, pin_memory=self.device.type == "cuda", collate_fn=_collate, **kwargs
        )

    def _read(self, loader: DataLoader) -> Iterator:
        """The batches of `loader`, less the unreadable files (data.skip_bad_images), which join `skipped`."""
        for batch, left_out in unwrapped(loader):
            self.skipped.update(str(self.files.layout.root / name) for name in left_out)
            if batch is not None:
                yield batch

    def batches(self, start: int = 0) -> Iterator[Batch]:
        epoch, offset = divmod(start, self.steps_per_epoch)
        steps = count(start)
        while True:
            sampler = _EpochSampler(len(self.files), self.batch_size, self.world, self.rank, self.seed, epoch, offset)
            loader = self._loader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=sampler,
                persistent_workers=False,
                prefetch_factor=prefetch_factor(self.workers, self.batch_size * 3 * self.cfg.image_size**2),
            )
            for (x, y), step in zip(self._read(loader), steps):
                x = self._finish_training(x.to(self.device, non_blocking=True), step)
                yield x, y.to(self.device, non_blocking=True)
            epoch, offset = epoch + 1, 0

    def eval_batches(
        self, batch_size: int | None = None, tta: str = "none", scales: list[int] | None = None
    ) -> Iterator[Batch]:
        """The whole split in order, as evaluation views; `tta="10crop"` yields (10, N, ...) views, and
        `tta="multiscale"` one image at a time, as a list of (1, 3, H, W) views: the whole image at
        each shorter side of `scales` (§3.4's: `augment.multiscale_sizes`)."""
        size, shorter = self.eval_size, round(self.eval_size * self.eval_resize)
        if tta == "multiscale":  # images of their own shapes: one at a time
            view, batch_size = partial(_whole_views, sides=scales), 1
        else:
            view = partial(_evaluation_view, shorter=shorter, crop=shorter if tta == "10crop" else size)
        indices = list(range(self.rank, len(self.files), self.world))
        dataset = _FileDataset(self.files, view, skip_bad=self.cfg.skip_bad_images)
        loader = self._loader(dataset, batch_size=batch_size or self.batch_size, sampler=indices)
        for x, y in self._read(loader):
            y = y.to(self.device, non_blocking=True)
            if tta == "10crop":
                yield torch.stack([self._finish(v) for v in ten_crop(x.to(self.device), size)]), y
            elif tta == "multiscale":
                yield [self._finish(v) for v in x], y
            else:
                yield self._finish(x), y


def usable_workers(workers: int) -> int:
    """data.workers, at most one per CPU this process may use: more only contend (torch warns of it)."""
    return min(workers, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def unwrapped(loader: DataLoader) -> Iterator:
    """The batches of `loader`; a UsageError of a worker (an unreadable image) as its own line, not inside
    the worker's traceback, which is how DataLoader passes it on."""

    def own_line(e: UsageError) -> UsageError:
        last = str(e).rstrip().splitlines()[-1]
        return UsageError(last.removeprefix(f"{UsageError.__module__}.{UsageError.__qualname__}: "))

    return reraised(loader, own_line)


def reraised(batches, error) -> Iterator:
    """The items of `batches`; a UsageError while making one is raised as `error(it)` instead."""
    batches = iter(batches)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except UsageError as e:
            raise error(e) from None
        yield batch


PREFETCH = 4  # batches each worker decodes ahead, where shared memory allows
SHARED_MEMORY = Path("/dev/shm")  # where the workers' batches wait (a container's is often 64 MB)


def prefetch_factor(workers: int, batch_bytes: int) -> int | None:
    """Batches each of `workers` decodes ahead: PREFETCH, fewer where their queue of uint8 batches of
    `batch_bytes` would fill more than half of the free shared memory (at least 1; None without workers)."""
    if not workers:
        return None
    try:
        free = shutil.disk_usage(SHARED_MEMORY).free
    except OSError:  # no /dev/shm (macOS, Windows): the queue lives elsewhere
        return PREFETCH
    return max(1, min(PREFETCH, free // 2 // (workers * batch_bytes)))


LOADERS = {IMAGES: TensorLoader, FEATURES: FeatureLoader, FILES: StreamLoader}  # the loader of each kind of data


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
    """The images of a file list, decoded and made tensors by `view(image, rng)`. Training items are
    keyed (epoch, index), and their augmentation seeded by the key; evaluation items by index."""

    def __init__(self, files: FileList, view, seed: int = 0, train: bool = False, skip_bad: bool = False) -> None:
        self.files, self.view, self.seed, self.train, self.skip_bad = files, view, seed, train, skip_bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key):
        epoch, index = key if self.train else (0, key)
        name, label = self.files.files[index]
        rng = random.Random(derive_seed(self.seed, AUGMENT, epoch, index)) if self.train else None
        try:
            image = decode_image(self.files.layout.read(name), name)
        except (OSError, UsageError) as e:
            if self.skip_bad:
                return None, name  # left out of its batch by _collate
            raise e if isinstance(e, UsageError) else UsageError(f"{name}: unreadable ({e.strerror or e})") from None
        return self.view(image, rng), label


def _collate(items: list[tuple]) -> tuple:
    """(the batch of the items read, or None if none was; the names of the files left out unread)."""
    kept = [item for item in items if item[0] is not None]
    return (default_collate(kept) if kept else None), [name for view, name in items if view is None]


def _training_view(image: Image.Image, rng: random.Random, **transform) -> torch.Tensor:
    """The augmented training view (`augment.image_transform`)."""
    return _tensor(image_transform(image, rng, **transform))


def _evaluation_view(image: Image.Image, rng: None, shorter: int, crop: int) -> torch.Tensor:
    """The shorter side resized to `shorter`, then the center crop of `crop`."""
    return _tensor(center_crop(resize_shorter(image, shorter), crop))


def _whole_views(image: Image.Image, rng: None, sides: list[int]) -> list[torch.Tensor]:
    """The whole image at each shorter side of `sides` (multi-scale testing)."""
    return [_tensor(resize_shorter(image, side)) for side in sides]


def _tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())
