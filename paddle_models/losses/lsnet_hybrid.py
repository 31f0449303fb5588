"""LSNet's training loss: cross-entropy + Dice on the final logits (Paddle twin of
``torch_ref/losses/lsnet_hybrid.py``, whose docstring describes the official behaviour).

Args of ``build_loss("lsnet_hybrid", ...)``:
    dice (str): "official" (default; one Dice per (class, image column), averaged) or "standard"
        (one Dice per class over batch, H, W).
    eps (float): added to the Dice denominator. Default 1e-7 (official).

Cross-entropy and the softmax come from ``cross_entropy.exact_log_softmax``: Paddle's own
softmax / cross_entropy kernels clip logit gaps beyond 64 (torch does not). The Dice sums accumulate in
float64 (``reduction.py``: Paddle's CPU float32 sum over some axes drifts ~1e-5 at 256 px, torch's 3e-8).
"""

from __future__ import annotations

from typing import Dict, Sequence

import paddle
import paddle.nn.functional as F
from paddle import nn

from rsrepro.lsnet import DICE_MODES, check_dice_mode, check_label_range, check_shapes, dice_sum_dims

from ..registry import LOSSES
from .cross_entropy import exact_log_softmax, masked_cross_entropy
from .reduction import accurate_sum


def dice_loss(logits: paddle.Tensor, labels: paddle.Tensor, mode: str = "official",
              eps: float = 1e-7) -> paddle.Tensor:
    """1 - mean Dice of softmax probabilities vs one-hot labels."""
    probs = paddle.exp(exact_log_softmax(logits, axis=1))
    one_hot = F.one_hot(labels, logits.shape[1]).transpose([0, 3, 1, 2]).astype(probs.dtype)  # b, c, h, w
    dims = list(dice_sum_dims(mode))
    intersection = accurate_sum(probs * one_hot, dims)
    cardinality = accurate_sum(probs + one_hot, dims)
    return 1 - (2 * intersection / (cardinality + eps)).mean()


class LSNetHybridLoss(nn.Layer):
    def __init__(self, dice: str = "official", eps: float = 1e-7) -> None:
        super().__init__()
        self.dice = check_dice_mode(dice)
        self.eps = float(eps)

    def terms(self, outputs: paddle.Tensor | Sequence[paddle.Tensor],
              labels: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        """``{"ce": cross-entropy, "dice": Dice loss}``, the two terms the official training logs (their
        sum is the loss)."""
        logits = outputs if isinstance(outputs, paddle.Tensor) else outputs[-1]
        check_shapes(tuple(logits.shape), tuple(labels.shape))
        labels = labels.astype("int64")
        check_label_range(int(labels.min()), int(labels.max()), logits.shape[1])
        ce = masked_cross_entropy(logits, labels, ignore_index=-100)  # every pixel is valid
        return {"ce": ce, "dice": dice_loss(logits, labels, self.dice, self.eps)}

    def forward(self, outputs: paddle.Tensor | Sequence[paddle.Tensor],
                labels: paddle.Tensor) -> paddle.Tensor:
        terms = self.terms(outputs, labels)
        return terms["ce"] + terms["dice"]


@LOSSES.register("lsnet_hybrid")
def lsnet_hybrid(dice: str = "official", eps: float = 1e-7) -> LSNetHybridLoss:
    return LSNetHybridLoss(dice, eps)


__all__ = ["DICE_MODES", "LSNetHybridLoss", "dice_loss", "lsnet_hybrid"]
