"""Residual networks as ensembles of paths (Veit, Wilber, Belongie 2016): the lesion study.

A network's residual blocks form a lineup that can be changed at test time: blocks deleted (§4.1,
Fig. 3 and 5a: the residual branch removed, the shortcut kept, y = shortcut(x)) or reordered
(Fig. 5b: blocks of equal shape swapped). `lineup_errors` evaluates many lineups in one pass over
the data, each from the first block where it differs from the intact network.

from resnet.analysis.lesions import residual_blocks, block_shapes, delete, lineup_errors
blocks = residual_blocks(model)
shapes = block_shapes(model, images)
errors = lineup_errors(model, [delete(blocks, [i], shapes) for i in range(len(blocks))], batches)
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..models.resnet import ResNet
from ..train.modes import mode

Lineup = list[nn.Module]  # the modules that run in the blocks' places, first to last
Shape = tuple[tuple[int, ...], tuple[int, ...]]  # a block's input and output shape (C, H, W)


def residual_blocks(model: nn.Module) -> Lineup:
    """The blocks of `model`, stage after stage. UsageError unless it is a ResNet (resnetN, plainN,
    the ImageNet ResNets) whose blocks have a residual branch and a shortcut."""
    if not isinstance(model, ResNet):
        raise UsageError(
            f"the lesion study takes a network of the ResNet family (resnet56, plain56...), not {type(model).__name__}"
        )
    return [block for stage in model.stages() for block in stage]


class Deleted(nn.Module):
    """A block whose residual branch is removed: y = shortcut(x) (a plain block's shortcut is x)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.shortcut(x)


@torch.no_grad()
def block_shapes(model: nn.Module, images: torch.Tensor) -> list[Shape]:
    """The input and output shape (C, H, W) of each block of `model`, found on the first of `images`."""
    with mode(model, training=False):
        h, shapes = model.forward_stem(images[:1]), []
        for block in residual_blocks(model):
            out = block(h)
            shapes.append((tuple(h.shape[1:]), tuple(out.shape[1:])))
            h = out
    return shapes


def changes_shape(shape: Shape) -> bool:
    """Whether a block of this shape downsamples (or widens): its input and output shapes differ."""
    return shape[0] != shape[1]


def delete(blocks: Lineup, deleted, shapes: list[Shape]) -> Lineup:
    """`blocks` with those at the indices `deleted` replaced by their shortcut. UsageError for a
    block of a plain net that changes the shape: no identity can stand in its place."""
    for i in deleted:
        if blocks[i].plain and changes_shape(shapes[i]):
            raise UsageError(f"block {i} of the plain net changes the shape {_shape(shapes[i])}: it cannot be deleted")
    return [Deleted(block) if i in deleted else block for i, block in enumerate(blocks)]


def reorder(blocks: Lineup, order: list[int], shapes: list[Shape]) -> Lineup:
    """`blocks` in `order`, a permutation of their indices (position i runs block order[i]).
    UsageError when a block would stand where the shape is not its own."""
    if sorted(order) != list(range(len(blocks))):
        raise UsageError(f"an order of {len(blocks)} blocks is a permutation of 0..{len(blocks) - 1}, not {order}")
    for position, i in enumerate(order):
        if shapes[i] != shapes[position]:
            raise UsageError(
                f"block {i} {_shape(shapes[i])} cannot stand at position {position} {_shape(shapes[position])}: "
                "only blocks of the same shape can be swapped"
            )
    return [blocks[i] for i in order]


def random_deletion(n: int, k: int, rng: np.random.Generator) -> list[int]:
    """`k` of `n` block indices drawn without replacement, in order."""
    return sorted(rng.choice(n, size=k, replace=False).tolist())


def random_swaps(shapes: list[Shape], k: int, rng: np.random.Generator) -> list[int]:
    """The order of the blocks after `k` swaps, each of a pair drawn uniformly from the pairs of
    blocks of the same shape (Fig. 5b)."""
    n = len(shapes)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if shapes[i] == shapes[j]]
    order = list(range(n))
    for _ in range(k):
        i, j = pairs[rng.integers(len(pairs))]
        order[i], order[j] = order[j], order[i]
    return order


def kendall_tau(order: list[int]) -> float:
    """Kendall's τ between `order` and the original order: (concordant − discordant pairs) / pairs."""
    n = len(order)
    signs = [np.sign(order[j] - order[i]) for i in range(n) for j in range(i + 1, n)]
    return float(np.mean(signs)) if signs else 1.0


@torch.no_grad()
def lineup_errors(
    model: nn.Module, lineups: list[Lineup], batches, calibration=None, engine: str | None = None
) -> list[float]:
    """The top-1 error (%) of `model` with each of `lineups` in its blocks' places, over `batches`
    of (normalized images, labels). Batch norms keep the network's own statistics (eval mode);
    `calibration`, a list of (images, labels) of training data, re-estimates each lineup's from its
    first changed block on instead. The intact network's activations of each batch are computed
    once; a lineup runs from the first block where it differs from them. `engine` (one of
    resnet.optimize's, e.g. "openvino"; None: eager PyTorch) runs each block, compiled once."""
    blocks = residual_blocks(model)
    starts = [
        next((i for i, (a, b) in enumerate(zip(lineup, blocks)) if a is not b), len(blocks)) for lineup in lineups
    ]
    if calibration is not None:
        lineups = [_recalibrated(model, lineup, start, calibration) for lineup, start in zip(lineups, starts)]
        engine = None  # every lineup's blocks are copies of their own: compiling them would cost more than it saves
    run = _Runner(engine)
    wrong, count = np.zeros(len(lineups)), 0
    with mode(model, training=False):
        for x, y in batches:
            inputs = _inputs(model, blocks, x, run)
            for v, (lineup, start) in enumerate(zip(lineups, starts)):
                h = inputs[start]
                for block in lineup[start:]:
                    h = run(block, h)
                wrong[v] += (model.forward_head(h).argmax(1) != y).sum().item()
            count += len(y)
    return (100 * wrong / max(count, 1)).tolist()


class _Runner:
    """Runs a block on a batch: eagerly, or through `engine` of resnet.optimize, each block compiled
    once (per input shape) and its outputs checked there against float32 within the engine's
    tolerance. A deleted block (its shortcut: x, or x subsampled and zero-padded) stays eager."""

    def __init__(self, engine: str | None) -> None:
        self.engine, self.compiled = engine, {}

    def __call__(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.engine is None or isinstance(block, Deleted):
            return block(x)
        if block not in self.compiled:
            from ..optimize import for_inference  # the engines are imported only when asked for

            self.compiled[block] = for_inference(block, device=x.device, precision="fp32", engine=self.engine)
        return self.compiled[block](x)


def _inputs(model: nn.Module, lineup: Lineup, x: torch.Tensor, run=None) -> list[torch.Tensor]:
    """The input of each block of `lineup` and, last, the output of the last one."""
    inputs = [model.forward_stem(x)]
    for block in lineup:
        inputs.append(run(block, inputs[-1]) if run else block(inputs[-1]))
    return inputs


def _recalibrated(model: nn.Module, lineup: Lineup, start: int, calibration) -> Lineup:
    """`lineup` with copies of its blocks from `start` on, whose batch norms hold statistics
    re-estimated on `calibration` (the average over all its batches); the blocks before `start`
    see the intact network's inputs, so their statistics stay."""
    tail = copy.deepcopy(nn.ModuleList(lineup[start:])).eval()
    norms = [m for m in tail.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: every calibration batch counts the same
        bn.train()
    with mode(model, training=False):
        for x, _ in calibration:
            h = _inputs(model, lineup[:start], x)[-1]
            for block in tail:
                h = block(h)
    tail.eval()
    return [*lineup[:start], *tail]


def _shape(shape: Shape) -> str:
    (c, *size), (d, *out) = shape
    return f"({c}×{'×'.join(map(str, size))} → {d}×{'×'.join(map(str, out))})"
