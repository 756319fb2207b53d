"""The loss around a trained network along filter-normalized random directions (Li, Xu, Taylor, Studer,
Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets", §4).

from resnet.analysis.loss_surface import filter_normalized, surface
x, y = filter_normalized(model, seed=1), filter_normalized(model, seed=2)
rows = surface(model, batches, [x, y], grid(-1, 1, 11, 2), path)   # one row per point, resumable

A direction holds one tensor per parameter of the model (in `model.parameters()` order). The network
is evaluated as trained: BatchNorm in eval mode (its running statistics), the images unaugmented.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import run_folder

Direction = list[torch.Tensor]
Batches = list[tuple[torch.Tensor, torch.Tensor]]  # (normalized images, labels)
EPSILON = 1e-10  # the reference code's guard against a zero random filter


def filter_normalized(model: nn.Module, seed: int) -> Direction:
    """A Gaussian direction of `seed` for every parameter, each filter (an output channel of a
    convolution, a row of a linear layer: a slice along the first axis) rescaled to the norm of the
    same filter of the weights; one-dimensional parameters (BatchNorm weights and biases, biases) get
    a zero direction, as in Li et al.'s plots (their `ignore='biasbn'`)."""
    generator = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        w = p.detach().float().cpu()
        if w.dim() <= 1:
            direction.append(torch.zeros_like(w))
            continue
        d = torch.randn(w.shape, generator=generator)
        scale = w.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + EPSILON)
        direction.append(d * scale.view(-1, *([1] * (w.dim() - 1))))
    return [d.to(p.device) for d, p in zip(direction, model.parameters())]


@contextmanager
def moved(model: nn.Module, directions: list[Direction], coords: tuple[float, ...]):
    """The model with its weights moved to w + Σ coords[i] · directions[i] inside the block, restored after."""
    origin = [p.detach().clone() for p in model.parameters()]
    try:
        with torch.no_grad():
            for i, p in enumerate(model.parameters()):
                p.add_(sum(c * d[i] for c, d in zip(coords, directions)))
        yield model
    finally:
        with torch.no_grad():
            for p, w in zip(model.parameters(), origin):
                p.copy_(w)


@torch.no_grad()
def loss_and_error(model: nn.Module, batches: Batches) -> tuple[float, float]:
    """The mean cross-entropy and the top-1 error (fraction) of `model`, in eval mode, over `batches`."""
    model.eval()
    loss = wrong = count = 0.0
    for x, y in batches:
        out = model(x)
        loss += F.cross_entropy(out, y, reduction="sum").item()
        wrong += (out.argmax(1) != y).sum().item()
        count += len(y)
    return loss / count, wrong / count


def grid(low: float, high: float, steps: int, dims: int) -> list[tuple[float, ...]]:
    """The points of a `dims`-dimensional grid of `steps` values from `low` to `high` on each axis
    (Li et al.: -1 to 1 in 51 steps), the last axis varying fastest."""
    axis = [round(float(v), 6) for v in np.linspace(low, high, steps)]
    return list(itertools.product(axis, repeat=dims))


def surface(
    model: nn.Module, batches: Batches, directions: list[Direction], points: Iterable[tuple], path: Path
) -> list[dict]:
    """The loss and error at each of `points` (coordinates along `directions`), each appended to the
    JSON-lines file `path` as it is computed ({"coords", "loss", "error"}); points the file already
    holds are read, not computed again, so a stopped run resumes. Returns the rows of `points`, in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {tuple(row["coords"]): row for row in run_folder.read(path.parent, path.name)}
    rows = []
    for coords in points:
        if coords not in done:
            with moved(model, directions, coords):
                loss, error = loss_and_error(model, batches)
            done[coords] = {"coords": list(coords), "loss": loss, "error": error}
            run_folder.append(path.parent, done[coords], path.name)
        rows.append(done[coords])
    return rows


def convex_along(losses: list[float], tolerance: float = 1e-6) -> bool:
    """Whether a curve of losses at equally spaced points is convex: no second difference below
    -`tolerance` times the curve's range."""
    values = np.asarray(losses, dtype=float)
    scale = max(float(np.ptp(values)), 1e-12)
    return bool(np.all(np.diff(values, 2) >= -tolerance * scale))
