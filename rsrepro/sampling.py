"""The training sample order of an epoch (framework-free): the Paddle trainer's sampler and the torch
reference training loop of the convergence check draw their batches from the same function."""

from __future__ import annotations

import math
from typing import List

import numpy as np

__all__ = ["epoch_indices"]


def epoch_indices(num_samples: int, seed: int, epoch: int, shuffle: bool, rank: int = 0,
                  world_size: int = 1) -> List[int]:
    """This rank's sample order for ``epoch`` (framework-free).

    The order is a permutation drawn from ``numpy.random.default_rng([seed, epoch])`` (or
    0..n-1 without shuffle), padded by repeating its head until it divides by ``world_size``, then
    sharded ``order[rank::world_size]`` — every rank gets the same number of samples, as torch's and
    Paddle's distributed samplers do.
    """
    order = np.arange(num_samples)
    if shuffle:
        order = np.random.default_rng([int(seed), int(epoch)]).permutation(num_samples)
    total = int(math.ceil(num_samples / world_size)) * world_size
    if total > num_samples:
        order = np.concatenate([order, np.resize(order, total - num_samples)])
    return order[rank::world_size].tolist()
