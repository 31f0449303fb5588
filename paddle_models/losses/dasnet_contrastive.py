"""DASNet / DASNet-V2 double-margin contrastive loss (Paddle twin of
``torch_ref/losses/dasnet_contrastive.py``).

Formulas, variants (official / weighted / cosine) and options (class weights, lambdas, STANet's
balanced form) are documented once in ``rsrepro/dasnet.py``, which also validates the arguments for
both trees. The label is resized to each pair's size with ``layers.resize.bilinear``
(align_corners=True, kept soft), which float64 alignment runs swap for an exact resize. Means and sums
over pixels accumulate in float64 (``reduction.py``: Paddle's CPU float32 mean drifts ~1e-6 at 256 px).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import paddle
from paddle import nn

from rsrepro.dasnet import (
    BALANCED_EPS,
    FREQUENCY_FLOOR,
    TERM_NAMES,
    ContrastiveConfig,
    contrastive_config,
)

from ..layers import resize
from ..layers.normalize import l2_normalize
from ..registry import LOSSES
from .reduction import accurate_mean, accurate_sum


def pair_distance(x0: paddle.Tensor, x1: paddle.Tensor, cfg: ContrastiveConfig) -> paddle.Tensor:
    """Per-pixel distance (B, H, W) of two (B, C, H, W) embeddings."""
    if cfg.distance == "l2":
        return paddle.sqrt(paddle.pow(paddle.abs(x0 - x1) + cfg.eps, 2).sum(axis=1))
    # 1 - cos(x0, x1) as |u0 - u1|^2 / 2 of the unit vectors (see rsrepro/dasnet.py).
    u0, u1 = l2_normalize(x0), l2_normalize(x1)
    return 0.5 * ((u0 - u1) ** 2).sum(axis=1)


def pair_loss(distance: paddle.Tensor, y: paddle.Tensor, cfg: ContrastiveConfig) -> paddle.Tensor:
    m1, m2 = cfg.margins
    unchanged = (1 - y) * paddle.clip(distance - m1, min=0.0).pow(2)
    changed = y * paddle.clip(m2 - distance, min=0.0).pow(2)
    if cfg.balanced:
        return (accurate_sum(unchanged) / (accurate_sum(1 - y) + BALANCED_EPS)
                + accurate_sum(changed) / (accurate_sum(y) + BALANCED_EPS))
    if cfg.class_weights == "batch":
        p_changed = accurate_mean(y)
        w_u = 1.0 / paddle.clip(1 - p_changed, min=FREQUENCY_FLOOR)
        w_c = 1.0 / paddle.clip(p_changed, min=FREQUENCY_FLOOR)
    else:
        w_u, w_c = cfg.class_weights
    return accurate_mean(w_u * unchanged + w_c * changed)


def resize_labels(labels: paddle.Tensor, size: Sequence[int]) -> paddle.Tensor:
    """(B, H, W) soft labels at ``size`` (official ``rz_label``; identity at the same size)."""
    if tuple(labels.shape[-2:]) == tuple(int(s) for s in size):
        return labels
    return resize.bilinear(labels.unsqueeze(1), size).squeeze(1)


def check_inputs(outputs: Any, labels: paddle.Tensor) -> paddle.Tensor:
    """Validate the three pairs and the labels; return the labels as (B, H, W)."""
    if not isinstance(outputs, (list, tuple)) or len(outputs) != 3 or any(
            not isinstance(p, (list, tuple)) or len(p) != 2 for p in outputs):
        raise ValueError("dasnet_contrastive: expected the model outputs ([sa_t0, sa_t1], [ca_t0, ca_t1], "
                         f"[saca_t0, saca_t1]), got {type(outputs).__name__} of length "
                         f"{len(outputs) if hasattr(outputs, '__len__') else '?'}")
    for name, (x0, x1) in zip(TERM_NAMES, outputs):
        if x0.ndim != 4 or list(x0.shape) != list(x1.shape):
            raise ValueError(f"dasnet_contrastive: the {name} pair must be two (B, C, H, W) tensors of the "
                             f"same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if labels.ndim == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 3 or labels.shape[0] != outputs[0][0].shape[0]:
        raise ValueError(f"dasnet_contrastive: labels must be (B, H, W) with B = {outputs[0][0].shape[0]}, "
                         f"got {tuple(labels.shape)}")
    low, high = float(labels.min()), float(labels.max())
    if low < 0 or high > 1:
        raise ValueError(f"dasnet_contrastive: labels must be change masks in [0, 1] (0 = unchanged, "
                         f"1 = changed), got values in [{low:g}, {high:g}]; binarise 0/255 labels first "
                         f"(rsrepro.data.cdd does) — the loss has no ignore index")
    return labels


class DASNetContrastiveLoss(nn.Layer):
    """Weighted sum over the sa / ca / saca pairs of the double-margin contrastive loss.

    ``loss(outputs, labels)`` with ``outputs`` the model's three pairs and ``labels`` (B, H, W) 0/1.
    ``terms(outputs, labels)`` gives the lambda-weighted terms by name (their sum is the loss); a term
    whose lambda is 0 is not computed at all, so its branch gets no gradient (as a loss that leaves
    the term out: Adam then skips those parameters, weight decay included).
    """

    def __init__(self, variant: str = "official", margins: Sequence[float] | None = None,
                 class_weights: Sequence[float] | str | None = None,
                 lambdas: Sequence[float] = (1.0, 1.0, 1.0), balanced: bool = False,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.cfg = contrastive_config(variant, margins, class_weights, lambdas, balanced, eps)

    def terms(self, outputs: Any, labels: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        labels = check_inputs(outputs, labels)
        out: Dict[str, paddle.Tensor] = {}
        for name, lam, (x0, x1) in zip(TERM_NAMES, self.cfg.lambdas, outputs):
            if lam == 0:
                continue
            y = resize_labels(labels.astype(x0.dtype), x0.shape[-2:])
            out[name] = lam * pair_loss(pair_distance(x0, x1, self.cfg), y, self.cfg)
        return out

    def forward(self, outputs: Any, labels: paddle.Tensor) -> paddle.Tensor:
        terms = list(self.terms(outputs, labels).values())
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total


@LOSSES.register("dasnet_contrastive")
def dasnet_contrastive(variant: str = "official", margins: Sequence[float] | None = None,
                       class_weights: Sequence[float] | str | None = None,
                       lambdas: Sequence[float] = (1.0, 1.0, 1.0), balanced: bool = False,
                       eps: float = 1e-6) -> DASNetContrastiveLoss:
    return DASNetContrastiveLoss(variant, margins, class_weights, lambdas, balanced, eps)
