"""Reductions over many pixels, accumulated in float64 (twin of ``torch_ref/losses/reduction.py``).

Paddle 3.3's CPU kernels reduce a float32 ``mean`` and a ``sum`` over some axes sequentially: over the
262k pixels of a 4 x 256 x 256 batch the result is ~1e-6 relative off the exact value, over 1.6M pixels
~1e-5, where torch's (and Paddle's own full ``sum``) cascade reduction stays at ~3e-8. At paper input
sizes that put the Paddle losses 100x further from float64 than torch's (``python -m
alignment.check_loss --size full``: DASNet-V2's contrastive loss 4.5e-6 vs 4.5e-8, LSNet's Dice 1.3e-5
vs 3e-8). Accumulating in float64 and rounding once is the exact value to float32 rounding, costs a
cast of the loss inputs (nothing next to the model), and is a no-op for float64 tensors.
"""

from __future__ import annotations

from typing import Sequence

import paddle


def accurate_sum(x: paddle.Tensor, axis: int | Sequence[int] | None = None, keepdim: bool = False) -> paddle.Tensor:
    """``x.sum(axis)`` accumulated in float64, returned in ``x``'s dtype."""
    return x.astype("float64").sum(axis=axis, keepdim=keepdim).astype(x.dtype)


def accurate_mean(x: paddle.Tensor) -> paddle.Tensor:
    """The mean of all elements, accumulated in float64, returned in ``x``'s dtype."""
    return x.astype("float64").mean().astype(x.dtype)
