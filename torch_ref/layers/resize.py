"""Bilinear resizing used by the models (align_corners=True, as the official codes)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)
