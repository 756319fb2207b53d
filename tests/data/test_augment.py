import torch

from resnet.data.augment import MULTISCALE, Normalize, lighting, multiscale_sizes, pad_crop_flip, ten_crop


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
