"""Channel-wise L2 normalisation (torch ``F.normalize``, as the official DASNet code)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """x / max(||x||_2, 1e-12) over dim 1."""
    return F.normalize(x, p=2, dim=1)
