import sys

import numpy as np
import pytest
import torch
from datasets import class_image

from resnet import UsageError
from resnet.data.augment import (
    MULTISCALE,
    Normalize,
    apply_policy,
    auto_augment_policy,
    cutmix_box,
    lighting,
    multiscale_sizes,
    pad_crop_flip,
    policy_per_image,
    random_erase,
    ten_crop,
)


def _naive(images, pad, shifts, flips):
    padded = torch.nn.functional.pad(images, (pad,) * 4)
    h, w = images.shape[-2:]
    out = []
    for image, (dy, dx), flip in zip(padded, shifts.tolist(), flips.tolist()):
        crop = image[:, dy : dy + h, dx : dx + w]
        out.append(crop.flip(2) if flip else crop)
    return torch.stack(out)


def test_pad_crop_flip_matches_a_per_image_implementation():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = pad_crop_flip(images, 4, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    shifts = torch.randint(0, 9, (64, 2), generator=g)
    flips = torch.rand(64, generator=g) < 0.5
    assert torch.equal(out, _naive(images, 4, shifts, flips))
    assert 0 < flips.sum() < 64 and len(set(map(tuple, shifts.tolist()))) > 20


def test_padding_is_zero_and_crops_stay_in_range():
    images = torch.full((256, 1, 4, 4), 7, dtype=torch.uint8)
    out = pad_crop_flip(images, 2, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0, 7}
    # every crop keeps at least a 2×2 corner of the image
    assert ((out == 7).sum(dim=(1, 2, 3)) >= 4).all()


def test_flip_only():
    images = torch.arange(2 * 3 * 2 * 4).view(2, 3, 2, 4)
    out = pad_crop_flip(images, 0, torch.Generator().manual_seed(1))
    for x, y in zip(images, out):
        assert torch.equal(y, x) or torch.equal(y, x.flip(2))


def test_ten_crop():
    images = torch.arange(36.0).view(1, 1, 6, 6)
    crops = ten_crop(images, 4)
    assert crops.shape == (10, 1, 1, 4, 4)
    assert crops[0, 0, 0, 0, 0] == 0 and crops[3, 0, 0, -1, -1] == 35 and crops[4, 0, 0, 0, 0] == 7
    assert torch.equal(crops[5], crops[0].flip(3))


def test_normalize():
    images = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    channel = Normalize.fit(images, per_pixel=False)
    x = channel(images)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    pixel = Normalize.fit(images, per_pixel=True)
    assert pixel.mean.shape == (3, 4, 4)
    assert torch.allclose(pixel(images).mean(dim=0), torch.zeros(3, 4, 4), atol=1e-5)


# -- random erasing ---------------------------------------------------------------------------------


def _erased_boxes(out):
    """(erased or not, area fraction, height / width) of each erased image of 0/1 pixels."""
    zero = out[:, 0] == 0
    rows, cols = zero.any(2).sum(1).float(), zero.any(1).sum(1).float()
    assert torch.equal(zero.sum((1, 2)).float(), rows * cols)  # each erased region is one rectangle
    h, w = out.shape[-2:]
    return zero.any(2).any(1), rows * cols / (h * w), rows / cols.clamp_min(1)


def test_random_erasing_boxes_take_their_area_and_ratio_from_the_ranges():
    images = torch.ones(500, 2, 48, 48)
    out = random_erase(images, 0.5, [0.02, 0.33], [0.3, 3.3], torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0.0, 1.0} and torch.equal(out[:, 0], out[:, 1])  # every channel
    erased, area, ratio = _erased_boxes(out)
    assert 0.45 < erased.float().mean() < 0.55  # the probability
    area, ratio = area[erased], ratio[erased]
    assert area.min() > 0.015 and area.max() < 0.35  # in [0.02, 0.33], up to the rounding of the sides
    assert area.max() > 0.3 and area.min() < 0.03  # spread over the range
    assert ratio.min() < 0.5 and ratio.max() > 2 and ratio.min() > 0.2 and ratio.max() < 5


def test_random_erasing_probability_and_ranks():
    images = torch.ones(64, 1, 16, 16)
    g = torch.Generator
    assert torch.equal(random_erase(images, 0.0, [0.02, 0.33], [0.3, 3.3], g().manual_seed(1)), images)
    erased, _, _ = _erased_boxes(random_erase(images, 1.0, [0.1, 0.2], [0.5, 2], g().manual_seed(1)))
    assert erased.all()
    whole = random_erase(images, 0.5, [0.1, 0.3], [0.3, 3.3], g().manual_seed(2))
    parts = [
        random_erase(images[i : i + 16], 0.5, [0.1, 0.3], [0.3, 3.3], g().manual_seed(2), (i, 64))
        for i in (0, 16, 32, 48)
    ]
    assert torch.equal(torch.cat(parts), whole)  # each process erases its slice as one process would


def test_cutmix_box_is_the_clipped_square_of_one_minus_lambda():
    rng = np.random.default_rng(0)
    clipped = 0
    for _ in range(200):
        lam = rng.uniform()
        top, bottom, left, right = cutmix_box(32, 40, lam, rng)
        assert 0 <= top <= bottom <= 32 and 0 <= left <= right <= 40
        side_h, side_w = 2 * (int(32 * (1 - lam) ** 0.5) // 2), 2 * (int(40 * (1 - lam) ** 0.5) // 2)
        clipped += (bottom - top, right - left) != (side_h, side_w)
        assert bottom - top <= side_h and right - left <= side_w
    assert 20 < clipped < 200  # boxes at the border are cut off there (which λ then accounts for)


# -- RandAugment and TrivialAugment: torchvision's ---------------------------------------------------


def _theirs(transforms, name):
    bilinear = transforms.InterpolationMode.BILINEAR
    if name == "randaugment":
        return transforms.RandAugment(3, 12, interpolation=bilinear)
    return transforms.TrivialAugmentWide(interpolation=bilinear)


def test_the_policies_get_the_configs_operations_magnitude_and_bilinear(policies):
    bilinear = policies.InterpolationMode.BILINEAR
    ra = auto_augment_policy("randaugment", ops=3, magnitude=12)
    assert (type(ra), ra.num_ops, ra.magnitude, ra.interpolation) == (policies.RandAugment, 3, 12, bilinear)
    ta = auto_augment_policy("trivialaugment")
    assert (type(ta), ta.interpolation) == (policies.TrivialAugmentWide, bilinear)


@pytest.mark.parametrize("name", ["randaugment", "trivialaugment"])
def test_policies_are_torchvisions_transforms_seeded_per_image(policies, name):
    transforms = policies
    policy = auto_augment_policy(name, ops=3, magnitude=12)
    image = class_image("red", np.random.default_rng(0), (40, 36))
    state = torch.get_rng_state()
    ours = apply_policy(policy, [image] * 6, list(range(6)))
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is left alone
    for seed, out in enumerate(ours):
        torch.manual_seed(seed)
        assert np.array_equal(np.asarray(out), np.asarray(_theirs(transforms, name)(image)))
    assert sum(not np.array_equal(np.asarray(out), np.asarray(image)) for out in ours) >= 3
    # decoded tensors: the same, per image, with a seed each from the step's generator
    batch = torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())[None].repeat(4, 1, 1, 1)
    whole = policy_per_image(batch, policy, torch.Generator().manual_seed(5))
    seeds = torch.randint(2**62, (4,), generator=torch.Generator().manual_seed(5)).tolist()
    for seed, image_out in zip(seeds, whole):
        torch.manual_seed(seed)
        assert torch.equal(image_out, _theirs(transforms, name)(batch[0]))
    half = policy_per_image(batch[2:], policy, torch.Generator().manual_seed(5), part=(2, 4))
    assert torch.equal(half, whole[2:])  # a process's slice as in one process


def test_a_missing_torchvision_is_one_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision raises ImportError
    with pytest.raises(UsageError, match=r"data.auto_augment=trivialaugment needs torchvision: pip install torchvi"):
        auto_augment_policy("trivialaugment")
    with pytest.raises(UsageError, match=r"resnet\[augment\]"):
        auto_augment_policy("randaugment")
    assert auto_augment_policy("none") is None


# fb.resnet.torch's PCA of ImageNet's RGB pixels in [0, 1] (AlexNet's color augmentation), as published
EIGVAL = [0.2175, 0.0188, 0.0045]
EIGVEC = [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]


def test_lighting_adds_alexnets_pca_noise_to_0_255_pixels():
    images = torch.randint(0, 256, (6, 3, 5, 4), dtype=torch.uint8)
    out = lighting(images, 0.1, torch.Generator().manual_seed(4))
    alphas = torch.randn(6, 3, generator=torch.Generator().manual_seed(4)) * 0.1  # the same draw
    for image, lit, alpha in zip(images, out, alphas.tolist()):
        for i in range(3):  # fb.resnet.torch: rgb = eigvec · (alpha ∘ eigval), on 0-1 pixels
            shift = 255 * sum(EIGVEC[i][j] * alpha[j] * EIGVAL[j] for j in range(3))
            assert torch.allclose(lit[i], image[i].float() + shift, rtol=0, atol=1e-4)
    assert out.dtype == torch.float32 and 1 < (out - images).abs().max() < 40  # a few pixel levels


def test_lighting_of_a_slice_draws_the_whole_batchs_noise():
    images = torch.zeros(8, 3, 2, 2)
    whole = lighting(images, 0.1, torch.Generator().manual_seed(1))
    part = lighting(images[4:], 0.1, torch.Generator().manual_seed(1), part=(4, 8))
    assert torch.equal(part, whole[4:])


def test_multiscale_sizes_are_the_papers_for_224_crops():
    assert multiscale_sizes(224) == list(MULTISCALE) == [224, 256, 384, 480, 640]
    assert multiscale_sizes(112) == [112, 128, 192, 240, 320]
