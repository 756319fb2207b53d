"""Seeds of the data's random draws. Every draw is a function of (seed, purpose, step, ...): a resumed
run draws what it would have drawn, and every process of a distributed run draws alike."""

from __future__ import annotations

import numpy as np
import torch

SHUFFLE, AUGMENT, ERASE, MIX, POLICY, LIGHTING = range(6)  # what a draw is for


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative integers (seed, purpose, epoch, step, ...), stable everywhere."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded by `derive_seed(*keys)`."""
    return torch.Generator().manual_seed(derive_seed(*keys))


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of `n` items in `epoch`."""
    return torch.randperm(n, generator=generator(seed, SHUFFLE, epoch))
