"""Reductions accumulated in float64 (twin of ``paddle_models/losses/reduction.py``, which says why).

Torch's own float32 reductions are cascaded and stay at ~3e-8 relative over a million terms, so the torch
losses that follow the official code keep them; only FactSeg's loss, whose sums the official code does not
fix either way and which both trees compute identically (docs/factseg.md), uses these on both sides.
"""

from __future__ import annotations

from typing import Sequence

import torch


def accurate_sum(x: torch.Tensor, axis: int | Sequence[int] | None = None, keepdim: bool = False) -> torch.Tensor:
    """``x.sum(axis)`` accumulated in float64, returned in ``x``'s dtype."""
    if axis is None:
        return x.double().sum().to(x.dtype)
    return x.double().sum(dim=axis, keepdim=keepdim).to(x.dtype)


def accurate_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of all elements, accumulated in float64, returned in ``x``'s dtype."""
    return x.double().mean().to(x.dtype)
