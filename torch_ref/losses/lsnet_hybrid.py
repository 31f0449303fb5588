"""LSNet's training loss: cross-entropy + Dice on the final logits (torch reference).

The official training (github qaz670756/LSNet, ``train.py`` + ``utils/losses.py``) calls
``contra_hybrid_loss`` with only the final logits: ``FocalLoss(gamma=0)`` (= mean cross-entropy;
its detached (1 - p)^0 factor is 1) plus ``dice_loss``. The contrastive term is constructed but
never used. Its Dice sums over dims ``(0,) + range(2, target.ndim)``; with (B, H, W) targets that is
(batch, H) only, so it computes one Dice per (class, image column) and averages those
(``dice="official"``, the default). ``dice="standard"`` sums over (batch, H, W): one Dice per class.

Args of ``build_loss("lsnet_hybrid", ...)``:
    dice (str): "official" (default) or "standard".
    eps (float): added to the Dice denominator. Default 1e-7 (official).

Called as ``loss(outputs, labels)``: ``outputs`` is the model's output tuple (the last element,
the (B, C, H, W) logits, is used) or the logits themselves; ``labels`` (B, H, W) integer classes.
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsrepro.lsnet import DICE_MODES, check_dice_mode, check_label_range, check_shapes, dice_sum_dims

from ..registry import LOSSES


def dice_loss(logits: torch.Tensor, labels: torch.Tensor, mode: str = "official",
              eps: float = 1e-7) -> torch.Tensor:
    """1 - mean Dice of softmax probabilities vs one-hot labels (see the module docstring)."""
    probs = F.softmax(logits, dim=1)
    one_hot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)  # b, c, h, w
    dims = dice_sum_dims(mode)
    intersection = (probs * one_hot).sum(dims)
    cardinality = (probs + one_hot).sum(dims)
    return 1 - (2 * intersection / (cardinality + eps)).mean()


class LSNetHybridLoss(nn.Module):
    def __init__(self, dice: str = "official", eps: float = 1e-7) -> None:
        super().__init__()
        self.dice = check_dice_mode(dice)
        self.eps = float(eps)

    def terms(self, outputs: torch.Tensor | Sequence[torch.Tensor],
              labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{"ce": cross-entropy, "dice": Dice loss}``, the two terms the official training logs (their
        sum is the loss)."""
        logits = outputs if isinstance(outputs, torch.Tensor) else outputs[-1]
        check_shapes(tuple(logits.shape), tuple(labels.shape))
        labels = labels.long()
        check_label_range(int(labels.min()), int(labels.max()), logits.shape[1])
        return {"ce": F.cross_entropy(logits, labels), "dice": dice_loss(logits, labels, self.dice, self.eps)}

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor],
                labels: torch.Tensor) -> torch.Tensor:
        terms = self.terms(outputs, labels)
        return terms["ce"] + terms["dice"]


@LOSSES.register("lsnet_hybrid")
def lsnet_hybrid(dice: str = "official", eps: float = 1e-7) -> LSNetHybridLoss:
    return LSNetHybridLoss(dice, eps)


__all__ = ["DICE_MODES", "LSNetHybridLoss", "dice_loss", "lsnet_hybrid"]
