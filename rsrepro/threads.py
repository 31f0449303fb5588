"""One math-thread count for Paddle and torch in this process (benchmarks, parallel alignment runs)."""

from __future__ import annotations

import os
from typing import Sequence

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def setup_threads(threads: int, frameworks: Sequence[str] = ("paddle", "torch")) -> None:
    """Same thread count in both frameworks: env for the OpenMP/MKL pools (read when a framework loads, so
    call this before importing either where possible), then each framework's own setter. Only the listed
    frameworks are imported (a memory measurement of one framework must not carry the other's ~180 MB)."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    os.environ.setdefault("GLOG_minloglevel", "2")
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(threads)
    if "paddle" in frameworks:
        import paddle

        paddle.set_device("cpu")
        paddle.base.core.set_num_threads(threads)
