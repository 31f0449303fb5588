"""The training sampler: a seeded sample order per epoch and an exact start position inside an epoch
(what an exact resume needs), sharded over data-parallel processes like Paddle's and torch's samplers.
"""

from __future__ import annotations

from typing import Any, Iterator, List

import paddle

from rsrepro.sampling import epoch_indices

__all__ = ["epoch_indices", "ResumableBatchSampler"]


class ResumableBatchSampler(paddle.io.DistributedBatchSampler):
    """``DistributedBatchSampler`` with a seeded order and a start position inside an epoch.

    Paddle's own sampler orders epoch ``e`` by ``RandomState(e)`` regardless of any seed and always
    starts at the first batch; an exact resume needs both. ``set_epoch(epoch, skip=k)`` makes the
    next iteration yield the epoch's batches from batch ``k`` on (the skipped ones are not loaded).
    """

    def __init__(self, dataset: Any, batch_size: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True, drop_last: bool = True, seed: int = 0) -> None:
        super().__init__(dataset, batch_size, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         drop_last=drop_last)
        self.seed = int(seed)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:  # type: ignore[override]
        self.epoch = int(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[List[int]]:
        indices = epoch_indices(len(self.dataset), self.seed, self.epoch, self.shuffle, self.local_rank,
                                self.nranks)
        batches = [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        yield from batches[self.skip:]
