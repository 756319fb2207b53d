"""The paths of a residual network (Veit, Wilber, Belongie 2016, §5, Fig. 6): n blocks unravel into
2^n paths, C(n, k) of them through exactly k residual branches; and the gradient that reaches the
input through the paths of each length, by Veit's sampling method.

A path of length k is a choice of k blocks whose residual branch it goes through; at the other
blocks it takes the shortcut. In the backward pass the gradient follows one path: at every block
it goes through the ReLU after the addition (its derivative taken where the whole network's forward
pass put it, the same for every path: our blocks are post-activation, y = ReLU(F(x) + shortcut(x)))
and then through the branch F or the shortcut alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..train.modes import mode
from .lesions import residual_blocks


def path_counts(n: int) -> list[int]:
    """How many of the 2^n paths of `n` blocks have each length k = 0..n: C(n, k) (binomial)."""
    return [math.comb(n, k) for k in range(n + 1)]


class Paths:
    """The backward pass of a residual network on one batch, split into its paths. `gradient(path)`
    is the gradient of the summed cross-entropy loss at the first block's input along one path."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
        blocks = residual_blocks(model)
        if any(block.plain for block in blocks):
            raise UsageError("a plain network has one path through all its blocks: the path analysis needs shortcuts")
        self.steps = []  # per block: (input, branch output, shortcut output, sum, output), in autograd graphs
        with mode(model, training=False), torch.enable_grad():
            h = model.forward_stem(images).detach()
            for block in blocks:
                x = h.requires_grad_()
                branch, shortcut = block.branch(x), block.shortcut(x)
                total = (branch + shortcut).detach().requires_grad_()
                out = block.relu(total.clone())  # the ReLU after the addition, its derivative fixed here
                self.steps.append((x, branch, shortcut, total, out))
                h = out.detach()
            last = h.requires_grad_()
            loss = F.cross_entropy(model.forward_head(last), labels, reduction="sum")  # each image its own gradient
            (self.top,) = torch.autograd.grad(loss, last)

    @property
    def blocks(self) -> int:
        return len(self.steps)

    def gradient(self, path) -> torch.Tensor:
        """The gradient at the first block's input through the residual branches of the blocks in
        `path` (indices) and the shortcuts of the others."""
        g = self.top
        for i in reversed(range(self.blocks)):
            x, branch, shortcut, total, out = self.steps[i]
            (g,) = torch.autograd.grad(out, total, g, retain_graph=True)
            through = branch if i in path else shortcut
            if through is not x:  # an identity shortcut passes the gradient unchanged
                (g,) = torch.autograd.grad(through, x, g, retain_graph=True)
        return g

    def magnitudes(self, lengths, draws: int, rng: np.random.Generator) -> list[float]:
        """For each path length k of `lengths`: the mean over `draws` paths of k blocks drawn at
        random of the gradient's norm at the first block's input, averaged over the batch's images."""
        means = []
        for k in lengths:
            norms = [
                self.gradient(set(rng.choice(self.blocks, size=k, replace=False).tolist()))
                .flatten(1)
                .norm(dim=1)
                .mean()
                for _ in range(draws)
            ]
            means.append(float(torch.stack(norms).mean()))
        return means


def effective_lengths(totals: list[float], share: float = 0.9) -> tuple[int, int]:
    """The narrowest range of path lengths (lo, hi) whose total gradient (`totals`, per length
    0..n) holds at least `share` of the whole: the paths that carry the gradient."""
    whole, n = sum(totals), len(totals)
    ranges = [(lo, hi) for lo in range(n) for hi in range(lo, n) if sum(totals[lo : hi + 1]) >= share * whole]
    return min(ranges, key=lambda r: (r[1] - r[0], r[0]))
