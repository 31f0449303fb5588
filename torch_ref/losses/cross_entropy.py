"""Cross-entropy losses for segmentation (torch reference)."""

from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import LOSSES


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                         ignore_index: int) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``.

    Equals ``F.cross_entropy(..., ignore_index=...)`` except that an all-ignored batch gives 0
    instead of NaN (0/0).
    """
    per_pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    valid = (labels != ignore_index).sum().clamp(min=1)
    return per_pixel.sum() / valid


class MultiOutputCrossEntropy(nn.Module):
    """Weighted sum of cross-entropies, one per model output (DANet: fused, PAM, CAM).

    The official DANet maps label 255 to -1 and uses ``ignore_index=-1``; keeping 255 here is the
    same loss on the same pixels.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0), ignore_index: int = 255) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.ignore_index = int(ignore_index)

    def terms(self, outputs: Sequence[torch.Tensor], labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The weighted cross-entropy of each output, ``out0``, ``out1``, ... (their sum is the loss)."""
        if len(outputs) != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} outputs (one per weight), got {len(outputs)}")
        labels = labels.long()
        return {f"out{i}": w * masked_cross_entropy(o, labels, self.ignore_index)
                for i, (w, o) in enumerate(zip(self.weights, outputs))}

    def forward(self, outputs: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return sum(self.terms(outputs, labels).values())


@LOSSES.register("danet_ce")
def danet_ce(weights: Sequence[float] = (1.0, 1.0, 1.0), ignore_index: int = 255):
    return MultiOutputCrossEntropy(weights, ignore_index)
