"""Channel-wise L2 normalisation with torch ``F.normalize(x, p=2, dim=1)`` semantics (Paddle twin of
``torch_ref/layers/normalize.py``), written out so that both frameworks compute the same thing."""

from __future__ import annotations

import paddle

NORM_EPS = 1e-12  # torch F.normalize default


def l2_normalize(x: paddle.Tensor) -> paddle.Tensor:
    """x / max(||x||_2, 1e-12) over axis 1.

    max(sqrt(s), eps) is computed as sqrt(max(s, eps^2)): the same value, and no 0 * inf gradient
    when a vector is exactly zero (torch's norm backward returns 0 there).
    """
    squared = (x * x).sum(axis=1, keepdim=True)  # b, 1, h, w
    return x / paddle.sqrt(squared.clip(min=NORM_EPS * NORM_EPS))
