"""Process-level helpers shared by training and evaluation (a leaf of the engine: imports no engine module).

- ``unwrap_model``: the bare model inside ``paddle.DataParallel``;
- ``world``: (rank, world size) of this process;
- ``iterate_samples``: this process's share of a dataset (sample ``i`` on rank ``i % world``, no padding,
  so nothing is counted twice);
- ``gather_merge``: merge a metric accumulator (anything with ``merge(other)``) over all processes;
- ``progress_bar``: a tqdm bar on rank 0 only;
- ``select_device``: "gpu" when Paddle has CUDA and a card is visible, else "cpu".
"""

from __future__ import annotations

from typing import Any, Iterator, List, Tuple

import paddle
from tqdm import tqdm

__all__ = ["unwrap_model", "world", "iterate_samples", "gather_merge", "progress_bar", "select_device"]


def unwrap_model(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The bare model inside ``paddle.DataParallel``."""
    return model._layers if isinstance(model, paddle.DataParallel) else model


def world() -> Tuple[int, int]:
    """(rank, world size); (0, 1) outside ``paddle.distributed.launch``."""
    return paddle.distributed.get_rank(), paddle.distributed.get_world_size()


def iterate_samples(dataset: Any, batch_size: int = 1, num_workers: int = 0,
                    max_samples: int | None = None, shard: bool = True) -> Iterator[List[paddle.Tensor]]:
    """Batches of this process's share of ``dataset`` (sample i on rank i % world, no padding)."""
    rank, size = world() if shard else (0, 1)
    count = len(dataset) if max_samples is None else min(len(dataset), int(max_samples))
    indices = list(range(rank, count, size))
    if not indices:
        return iter(())
    subset = paddle.io.Subset(dataset, indices)
    sampler = paddle.io.BatchSampler(subset, batch_size=batch_size, shuffle=False, drop_last=False)
    loader = paddle.io.DataLoader(subset, batch_sampler=sampler, num_workers=num_workers,
                                  return_list=True)
    return iter(loader)


def gather_merge(local: Any) -> Any:
    """Merge a ConfusionMatrix / ThresholdSweep / BinaryConfusion over all processes."""
    _, size = world()
    if size <= 1:
        return local
    gathered: List[Any] = []
    paddle.distributed.all_gather_object(gathered, local)
    merged = gathered[0]
    for other in gathered[1:]:
        merged.merge(other)
    return merged


def progress_bar(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    """A progress bar on rank 0 (and only when ``enabled``)."""
    rank, _ = world()
    return tqdm(iterable, total=total, desc=desc, disable=not enabled or rank != 0 or None,
                leave=False, dynamic_ncols=True)


def select_device(device: str | None = None) -> str:
    """"gpu" when Paddle has CUDA and a card is visible, else "cpu" (or the one asked for)."""
    if device is None:
        device = "gpu" if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu"
    if device.startswith("gpu") and not paddle.is_compiled_with_cuda():
        raise RuntimeError("--device gpu: this Paddle build has no CUDA (install paddlepaddle-gpu)")
    paddle.set_device(device)
    return device.split(":")[0]
