"""Shattered gradients: the derivative along a line and its autocorrelation against direct computation,
and the `gradients` reproduction on tiny networks."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from resnet.analysis.shattered import autocorrelation, calibrate_batchnorm, line_gradients, random_direction


def test_autocorrelation_is_numpys():
    rng = np.random.default_rng(0)
    g = np.cumsum(rng.normal(size=200))  # brown noise: strongly correlated
    centred = g - g.mean()
    full = np.correlate(centred, centred, mode="full")[len(g) - 1 :] / (centred @ centred)
    np.testing.assert_allclose(autocorrelation(g, 10), full[:11], rtol=1e-12)
    white = autocorrelation(rng.normal(size=4096), 3)
    assert white[0] == 1.0 and np.all(np.abs(white[1:]) < 0.05)
    assert autocorrelation(np.cos(np.arange(64) * np.pi), 1)[1] == pytest.approx(-1, abs=0.05)  # alternating


def test_line_gradients_are_the_derivative_along_the_line():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()
    a, b = torch.randn(3, 6, 6, dtype=torch.double), torch.randn(3, 6, 6, dtype=torch.double)
    g = line_gradients(model, a, b, output=2, points=9, batch=4)
    assert g.shape == (9,)
    eps = 1e-6
    for i, t in enumerate(np.linspace(0, 1, 9)):
        with torch.no_grad():
            ahead, behind = (model((a + s * (b - a))[None])[0, 2].item() for s in (t + eps, t - eps))
        assert g[i] == pytest.approx((ahead - behind) / (2 * eps), rel=1e-6, abs=1e-9)


def test_calibrated_batchnorm_holds_the_inputs_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    x = torch.randn(20, 3, 8, 8) * 3 + 1
    calibrate_batchnorm(model, x, batch=10)  # two batches of equal size: their mean is the mean
    out = model[0](x).detach()
    bn = model[1]
    assert not model.training
    torch.testing.assert_close(bn.running_mean, out.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, out.var((0, 2, 3)), rtol=0.1, atol=1e-4)  # the mean of each batch's


def test_a_random_direction_has_the_length_asked_and_depends_on_the_seed_only():
    a = torch.randn(3, 8, 8)
    r = random_direction(a, norm=2.5, seed=0)
    assert r.shape == a.shape and float(r.norm()) == pytest.approx(2.5, rel=1e-6)
    assert torch.equal(r, random_direction(a + 1, norm=2.5, seed=0)) and not torch.equal(r, random_direction(a, 2.5, 1))


def test_gradients_reproduction(tmp_path):
    from resnet.analysis import shattered_gradients

    small = {"batch_size": 8, "log.evals": 1}
    r = shattered_gradients([20], out=tmp_path, quick=True, iters=2, progress=False, device="cpu", overrides=small)
    saved = {p.name for p in (tmp_path / "gradients").iterdir()}
    assert saved == {
        f"{n}{d}-{s}-balanced.json" for n in ("plain", "resnet") for d in (20,) for s in ("init", "trained")
    }
    stored = {name: json.loads((tmp_path / "gradients" / name).read_text()) for name in saved}
    lag1 = {
        (name, line): autocorrelation(np.array(g), 1)[1] for name, lines in stored.items() for line, g in lines.items()
    }
    first, resnet, plain = (
        r.findings[0],
        lag1["resnet20-init-balanced.json", "images"],
        lag1["plain20-init-balanced.json", "images"],
    )
    assert first.holds is (resnet > plain) and f"{resnet:.2f} against {plain:.2f}" in first.statement
    random = r.findings[2]  # along a random direction, every state: the ResNet's the more correlated
    states = ("init", "trained")
    assert random.holds is all(
        lag1[f"resnet20-{s}-balanced.json", "random"] > lag1[f"plain20-{s}-balanced.json", "random"] for s in states
    )
    assert len(r.findings) == 3 and "Lag-1 autocorrelation" in r.summary.read_text()
    assert (tmp_path / "figures" / "gradient_autocorrelation.png").stat().st_size > 10_000
