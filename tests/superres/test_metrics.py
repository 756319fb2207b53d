import math

import numpy as np
import pytest
import torch

from resnet.superres.metrics import psnr, rgb_to_y, ssim


def test_luma_spans_the_bt601_studio_range():
    black, white = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    assert rgb_to_y(black).item() == pytest.approx(16 / 255)
    assert rgb_to_y(white).item() == pytest.approx(235 / 255)


def test_psnr_from_a_hand_computed_mse():
    x = torch.zeros(1, 3, 8, 8)
    y = x.clone()
    y[0, 1, 3, 4] = 0.5  # one value off by 0.5 among 3·64: MSE 0.25 / 192
    assert psnr(x, y, channel="rgb").item() == pytest.approx(10 * math.log10(192 / 0.25))
    # A gray shift of 0.1 moves the luma by 0.1·219/255 everywhere.
    assert psnr(x, x + 0.1).item() == pytest.approx(20 * math.log10(255 / 21.9))


def test_psnr_crops_the_border():
    x = torch.rand(2, 3, 12, 12)
    y = x.clone()
    y[..., :2, :] = 0  # damage only the top two rows
    assert torch.isinf(psnr(x, y, border=2)).all()
    assert torch.isfinite(psnr(x, y, border=1)).all()


def test_ssim_of_an_image_with_itself_is_one_and_symmetric():
    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(ssim(x, y), ssim(y, x))
    assert (ssim(x, y) < 0.5).all()


def test_ssim_falls_as_noise_grows():
    x = torch.rand(1, 3, 32, 32)
    values = [ssim(x, (x + s * torch.randn_like(x)).clamp(0, 1), border=2).item() for s in (0.02, 0.1, 0.3)]
    assert values[0] > values[1] > values[2]


def _ssim_one_window(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s formula written out over one 11×11 window with Gaussian weights (σ = 1.5)."""
    t = np.arange(11) - 5
    w = np.outer(np.exp(-(t**2) / 4.5), np.exp(-(t**2) / 4.5))
    w /= w.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy, cov = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum(), (w * (x - mx) * (y - my)).sum()
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_ssim_matches_the_formula_on_one_window():
    rng = np.random.default_rng(0)
    x = rng.random((3, 11, 11))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    expected = np.mean([_ssim_one_window(x[c], y[c]) for c in range(3)])
    got = ssim(torch.from_numpy(x), torch.from_numpy(y), channel="rgb").item()
    assert got == pytest.approx(expected, rel=1e-9)


def test_ssim_needs_a_whole_window():
    with pytest.raises(ValueError, match="at least 11×11"):
        ssim(torch.rand(1, 3, 14, 14), torch.rand(1, 3, 14, 14), border=2)
