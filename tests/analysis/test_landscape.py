"""Filter-normalized directions, the resumable loss surface and the Hessian measures, against direct
computation on tiny networks."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet.analysis.loss_surface import convex_along, filter_normalized, grid, loss_and_error, moved, surface
from resnet.analysis.sharpness import hessian_trace, hessian_vector_product, top_eigenvalue, training_loss


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    ).eval()  # fmt: skip


def _batches():
    torch.manual_seed(1)
    return [(torch.randn(8, 3, 6, 6), torch.randint(0, 3, (8,))) for _ in range(2)]


def test_each_filter_has_the_norm_of_the_weights_filter_and_1d_parameters_none():
    model = _tiny()
    direction = filter_normalized(model, seed=3)
    for (name, p), d in zip(model.named_parameters(), direction):
        assert d.shape == p.shape
        if p.dim() <= 1:  # BN weight and bias, the classifier's bias
            assert torch.count_nonzero(d) == 0, name
            continue
        for i in range(p.shape[0]):  # each output channel, each classifier row
            torch.testing.assert_close(d[i].norm(), p[i].detach().norm())
    assert torch.equal(direction[0], filter_normalized(model, seed=3)[0])
    assert not torch.equal(direction[0], filter_normalized(model, seed=4)[0])


def test_surface_at_the_origin_is_the_networks_loss_and_resumes_from_its_file(tmp_path):
    model, batches = _tiny(), _batches()
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y).item()
    directions = [filter_normalized(model, seed=s) for s in (1, 2)]
    path = tmp_path / "plane.jsonl"
    rows = surface(model, batches, directions, grid(-1, 1, 3, 2), path)
    assert [r["coords"] for r in rows][:2] == [[-1.0, -1.0], [-1.0, 0.0]] and len(rows) == 9
    assert rows[4]["coords"] == [0.0, 0.0] and rows[4]["loss"] == pytest.approx(expected, rel=1e-6)
    with moved(model, directions, (0.5, -1.0)):  # the weights moved as the surface moves them
        w = model[0].weight.detach().clone()
        assert rows[4]["loss"] != pytest.approx(loss_and_error(model, batches)[0])
    torch.testing.assert_close(w, _tiny()[0].weight + 0.5 * directions[0][0] - directions[1][0])
    assert torch.equal(model[0].weight, _tiny()[0].weight)  # and restored after

    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5]) + "\n" + lines[5][:10])  # a run stopped while writing a point
    marked = {"coords": [-1.0, -1.0], "loss": 123.0, "error": 0.5}
    path.write_text(json.dumps(marked) + "\n" + path.read_text().split("\n", 1)[1])
    again = surface(model, batches, directions, grid(-1, 1, 3, 2), path)
    assert again[0]["loss"] == 123.0  # read from the file, not computed again
    assert [r["loss"] for r in again[1:]] == pytest.approx([r["loss"] for r in rows[1:]])


def test_convexity_of_a_curve():
    t = np.linspace(-1, 1, 11)
    assert convex_along(list(t**2)) and convex_along(list(np.abs(t)))
    assert not convex_along(list(np.cos(3 * t)))


def test_hessian_vector_product_is_the_finite_difference_of_gradients():
    model, (x, y) = _tiny().double(), _batches()[0]
    loss, params = training_loss(model, x.double(), y), list(model.parameters())
    torch.manual_seed(5)
    v = [torch.randn_like(p) for p in params]
    hv = hessian_vector_product(loss, params, v)
    eps = 1e-5  # in float64, small enough to cross none of ReLU's kinks
    grads = []
    for sign in (1, -1):
        with moved(model, [v], (sign * eps,)):
            grads.append(torch.autograd.grad(loss(), params))
    for h, gp, gm in zip(hv, *grads):
        torch.testing.assert_close(h, (gp - gm) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_top_eigenvalue_of_a_quadratic_is_the_known_one():
    a = torch.diag(torch.tensor([5.0, 2.0, -1.0, 0.5]))
    q = torch.linalg.qr(torch.randn(4, 4))[0]
    a = q @ a @ q.T
    w = torch.zeros(4, requires_grad=True)
    loss = lambda: 0.5 * w @ a @ w  # noqa: E731
    assert top_eigenvalue(loss, [w], tol=1e-6, iters=500) == pytest.approx(5.0, rel=1e-4)


def test_eigenvalue_and_trace_of_a_small_networks_explicit_hessian():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 3))  # 15 parameters
    x, y = torch.randn(16, 2), torch.randint(0, 3, (16,))
    params = list(net.parameters())
    shapes = [p.shape for p in params]

    def flat_loss(w):
        parts, i = [], 0
        for s in shapes:
            parts.append(w[i : i + s.numel()].view(s))
            i += s.numel()
        return F.cross_entropy(torch.func.functional_call(net, dict(zip(dict(net.named_parameters()), parts)), x), y)

    hessian = torch.autograd.functional.hessian(flat_loss, torch.cat([p.detach().flatten() for p in params]))
    eigenvalues = torch.linalg.eigvalsh(hessian)
    largest = eigenvalues[eigenvalues.abs().argmax()].item()
    loss = training_loss(net, x, y)
    assert top_eigenvalue(loss, params, tol=1e-7, iters=300) == pytest.approx(largest, rel=1e-3)
    exact = torch.trace(hessian).item()
    estimate = hessian_trace(loss, params, samples=100, seed=1)
    off_diagonal = (hessian**2).sum() - (torch.diagonal(hessian) ** 2).sum()
    standard_error = (2 * off_diagonal / 100).sqrt().item()  # of the mean of v·Hv, v Rademacher
    assert abs(estimate - exact) < 4 * standard_error < abs(exact)
    assert hessian_trace(loss, params, samples=100, seed=1) == estimate  # the seed decides the vectors


SMALL = {"batch_size": 8, "log.evals": 1}  # training steps of a few images: the tests measure, not train


@pytest.fixture(scope="module")
def quick_landscape(tmp_path_factory):
    """A quick landscape reproduction: two 20-layer nets trained 2 steps, a 3×3 grid on 8 images."""
    from resnet.analysis import landscape

    out = tmp_path_factory.mktemp("landscape")
    sizes = dict(steps=3, images=8, samples=2)
    return out, landscape(out=out, quick=True, iters=2, progress=False, device="cpu", overrides=SMALL, **sizes)


def test_landscape_report_measures_the_trained_networks(quick_landscape):
    from resnet.data.dataset import sample
    from resnet.data.loader import make_loader
    from resnet.data.sources import load_data
    from resnet.inference import load

    out, r = quick_landscape
    assert {p.name for p in (out / "runs").iterdir()} == {"resnet20-B", "plain20"}
    classifier = load(out / "runs" / "plain20" / "last.pt", device="cpu")
    data_cfg = classifier.config.data
    data = load_data(data_cfg)
    data.splits["train"] = sample(data.splits["train"], 8)  # the images the landscape measures on
    loader = make_loader(data, "train", data_cfg, train=False, batch_size=8, device="cpu",
                         normalize=classifier.normalize)  # fmt: skip
    x, y = next(loader.eval_batches())
    assert len(y.unique()) == 8  # eight classes, not the first class's first images
    with torch.no_grad():
        expected = F.cross_entropy(classifier.model(x), y).item()
    curve = [
        json.loads(line) for line in (out / "landscape" / "plain20-8images-balanced-1d.jsonl").read_text().splitlines()
    ]
    assert [row["coords"] for row in curve] == [[-1.0], [0.0], [1.0]]
    assert curve[1]["loss"] == pytest.approx(expected, rel=1e-5)
    plane = (out / "landscape" / "resnet20-B-8images-balanced-2d.jsonl").read_text().splitlines()
    assert len(plane) == 9
    sharp = {
        k: json.loads((out / "landscape" / f"{k}-sharpness-8images-balanced-2.json").read_text())
        for k in ("resnet20-B", "plain20")
    }
    larger = sharp["plain20"]["top_eigenvalue"] > sharp["resnet20-B"]["top_eigenvalue"]
    assert r.findings[0].holds is larger and f"{sharp['plain20']['top_eigenvalue']:.2f}" in r.findings[0].statement
    summary = r.summary.read_text()
    assert "top eigenvalue" in summary and "13.31" in summary and "resnet train --model plain20" in summary
    assert (out / "figures" / "loss_2d_contours.png").stat().st_size > 10_000


def test_landscape_resumes_from_the_points_it_wrote(quick_landscape):
    from resnet.analysis import landscape

    out, _ = quick_landscape
    path = out / "landscape" / "plain20-8images-balanced-1d.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["loss"] = 7.0  # a point the next run must read, not compute
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    r = landscape(
        out=out, quick=True, iters=2, progress=False, device="cpu", overrides=SMALL, steps=3, images=8, samples=2
    )
    assert "| plain-20 |" in r.summary.read_text() and json.loads(path.read_text().splitlines()[0])["loss"] == 7.0
    assert len(path.read_text().splitlines()) == 3


def test_landscape_refuses_an_even_grid_and_a_missing_checkpoint(capsys):
    from resnet.cli import main

    assert main(["reproduce", "landscape", "--quick", "--steps", "4"]) == 2
    assert "--steps must be odd" in capsys.readouterr().err
    assert main(["reproduce", "landscape", "--quick", "--weights", "missing.pt", "--plain-weights", "missing.pt"]) == 2
    assert capsys.readouterr().err.strip().endswith("missing.pt: no such checkpoint")


def test_landscape_of_given_checkpoints_trains_nothing(quick_landscape, tmp_path):
    from resnet.analysis import landscape

    out, _ = quick_landscape
    weights = (str(out / "runs" / "resnet20-B" / "last.pt"), str(out / "runs" / "plain20" / "last.pt"))
    r = landscape(weights=weights, out=tmp_path, quick=True, progress=False, device="cpu", steps=3, images=8, samples=2)
    assert not (tmp_path / "runs").exists()
    [curve] = (tmp_path / "landscape").glob("plain-*-8images-balanced-1d.jsonl")  # named by the file's digest
    trained = (out / "landscape" / "plain20-8images-balanced-1d.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in curve.read_text().splitlines()][1:] == pytest.approx(
        [json.loads(x)["loss"] for x in trained][1:]  # the same network and directions (the first was edited)
    )
    assert "given as checkpoints" in r.summary.read_text()
