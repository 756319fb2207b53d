"""Residual blocks built from dense layers, for feature vectors: the seed's block (a dense layer of
1024 units, dropout, a dense layer of 512 and one of 1024, added to the block's input), stacked to
any depth, and its plain counterpart (the same layers without the addition)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .base import ClassifierHead
from .blocks import DropPath, drop_path_rates
from .registry import register


class DenseBlock(nn.Module):
    """y = relu(x + F(x)) with F = dense(width→1024), ReLU, dropout, dense(→512), ReLU, dense(→width);
    `residual=False` gives y = relu(F(x)). `drop_path`: F's stochastic-depth rate."""

    def __init__(
        self,
        width: int = 1024,
        hidden: tuple[int, int] = (1024, 512),
        dropout: float = 0.2,
        residual: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden[0])
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], width)
        self.relu = nn.ReLU(inplace=True)
        self.drop_path = DropPath(drop_path)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.relu(self.fc1(x)))
        out = self.fc3(self.relu(self.fc2(out)))
        return self.relu(self.drop_path(out) + x if self.residual else out)


class ResidualMLP(ClassifierHead):
    """A dense stem (in_features → width), `blocks` DenseBlocks, a linear classifier `fc`.
    Inputs of any shape are flattened, so the network also reads small images. `drop_path_rate`:
    stochastic depth of the blocks (`drop_path_rates`)."""

    def __init__(
        self,
        *,
        in_features: int,
        num_classes: int,
        blocks: int,
        width: int = 1024,
        dropout: float = 0.2,
        residual: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(inplace=True))
        rates = drop_path_rates(drop_path_rate, blocks)
        self.blocks = nn.Sequential(*(DenseBlock(width, (1024, 512), dropout, residual, p) for p in rates))
        self.num_features = width
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear) and not m.weight.is_meta:  # on the meta device, nothing to set
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features of the last block (N, width)."""
        return self.blocks(self.stem(x.flatten(1)))


def mlp(
    *,
    num_classes: int = 10,
    in_features: int = 64,
    blocks: int = 4,
    dropout: float = 0.2,
    residual: bool = True,
    drop_path_rate: float = 0.0,
) -> ResidualMLP:
    """A residual (or plain) MLP of `blocks` dense blocks for `in_features`-dimensional inputs;
    `drop_path_rate`, stochastic depth (residual only)."""
    if blocks < 0 or in_features < 1:
        raise ValueError(f"blocks must be ≥ 0 and in_features ≥ 1, not {blocks} and {in_features}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {dropout}")
    if drop_path_rate and not residual:
        raise ValueError(
            "drop_path_rate needs shortcuts: a plain block is all residual branch, and dropped it passes nothing"
        )
    return ResidualMLP(
        in_features=in_features,
        num_classes=num_classes,
        blocks=blocks,
        dropout=dropout,
        residual=residual,
        drop_path_rate=drop_path_rate,
    )


for _name, _residual in (("residual_mlp", True), ("plain_mlp", False)):
    register(
        _name,
        partial(mlp, residual=_residual),
        family="mlp",
        depth=2 + 3 * 4,
        layers=lambda options: 2 + 3 * options["blocks"],  # the stem, 3 per block, the classifier
        input_size=64,
        num_classes=10,
        input_shape=(64,),
        description=f"{'residual' if _residual else 'plain'} MLP of dense blocks (1024-512-1024)",
    )
