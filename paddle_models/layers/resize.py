"""Bilinear resizing used by the models (align_corners=True, as the official codes).

Paddle's ``interpolate`` kernel computes its source coordinates in float32 even for float64
tensors (~1e-7 relative). That is far below float32 resolution, but it would hide everything
else in the float64 semantic-equality runs of ``alignment/``. Those runs call
``exact_float64_resize()``, under which float64 tensors are resized by an exact separable matrix
product (the same bilinear align_corners=True weights, computed in float64); the kernel's own
effect is measured separately and reported by name. Float32 tensors always use the kernel.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

_EXACT_FLOAT64 = False


@contextlib.contextmanager
def exact_float64_resize(enabled: bool = True) -> Iterator[None]:
    global _EXACT_FLOAT64
    previous, _EXACT_FLOAT64 = _EXACT_FLOAT64, enabled
    try:
        yield
    finally:
        _EXACT_FLOAT64 = previous


def align_corners_weights(out_size: int, in_size: int) -> np.ndarray:
    """(out, in) matrix of bilinear align_corners=True interpolation weights, in float64."""
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    for i in range(out_size):
        src = i * scale
        lo = min(int(np.floor(src)), in_size - 1)
        hi = min(lo + 1, in_size - 1)
        frac = src - lo
        weights[i, lo] += 1.0 - frac
        weights[i, hi] += frac
    return weights


def _exact_bilinear(x: paddle.Tensor, size: Sequence[int]) -> paddle.Tensor:
    rows = paddle.to_tensor(align_corners_weights(int(size[0]), x.shape[2]))
    cols = paddle.to_tensor(align_corners_weights(int(size[1]), x.shape[3]))
    return paddle.matmul(paddle.matmul(rows, x), cols, transpose_y=True)


def bilinear(x: paddle.Tensor, size: Sequence[int]) -> paddle.Tensor:
    if _EXACT_FLOAT64 and x.dtype == paddle.float64:
        return _exact_bilinear(x, size)
    return F.interpolate(x, size=[int(s) for s in size], mode="bilinear", align_corners=True)
