"""Reproducible per-sample augmentation streams shared by the dataset readers."""

from __future__ import annotations

import random


class EpochSeededSamples:
    """With an int ``seed``, sample ``i`` of epoch ``e`` draws its augmentation from
    ``random.Random(f"{seed}:{e}:{i}")``: reproducible, and independent of DataLoader workers and of
    the order samples are read in (what exact resume needs). ``seed=None``: a fresh OS-seeded
    generator per sample. Subclasses set ``self.seed`` and ``self.epoch``.
    """

    seed: int | None = None
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (only matters with an int ``seed``)."""
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> random.Random:
        """The generator sample ``index`` draws its augmentation from (see the class docstring)."""
        if self.seed is None:
            return random.Random()
        return random.Random(f"{self.seed}:{self.epoch}:{index}")
