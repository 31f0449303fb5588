"""Cross-entropy losses for segmentation (Paddle twin of ``torch_ref/losses/cross_entropy.py``)."""

from __future__ import annotations

from typing import Dict, Sequence

import paddle
from paddle import nn

from ..registry import LOSSES


def exact_log_softmax(logits: paddle.Tensor, axis: int = 1) -> paddle.Tensor:
    """log_softmax that matches torch for any logit range.

    Paddle 3.3.1's CPU softmax / log_softmax / cross_entropy kernels clip the shifted logits at
    -64, so a class more than 64 below the maximum gets log-probability -64 instead of its true
    value (torch: exact). Computed here as torch does: subtract the (constant) row maximum, then
    the log of the sum of exponentials, which keeps float32 rounding at torch's level too.
    """
    shifted = logits - logits.max(axis=axis, keepdim=True).detach()
    return shifted - paddle.log(paddle.exp(shifted).sum(axis=axis, keepdim=True))


def masked_cross_entropy(logits: paddle.Tensor, labels: paddle.Tensor,
                         ignore_index: int) -> paddle.Tensor:
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``.

    Not ``F.cross_entropy``: besides the -64 clip (see :func:`exact_log_softmax`), its
    ``reduction='mean'`` divides by ALL pixels when ignore_index < 0 (torch: by the valid ones).
    An all-ignored batch gives 0, as on the torch side.
    """
    valid = labels != ignore_index
    safe_labels = paddle.where(valid, labels, paddle.zeros_like(labels))
    log_probs = exact_log_softmax(logits, axis=1)
    per_pixel = -paddle.take_along_axis(log_probs, safe_labels.unsqueeze(1), axis=1).squeeze(1)
    valid_f = valid.astype(per_pixel.dtype)
    return (per_pixel * valid_f).sum() / valid_f.sum().clip(min=1.0)


class MultiOutputCrossEntropy(nn.Layer):
    """Weighted sum of cross-entropies, one per model output (DANet: fused, PAM, CAM).

    The official DANet maps label 255 to -1 and uses ``ignore_index=-1``; keeping 255 here is the
    same loss on the same pixels.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0), ignore_index: int = 255) -> None:
        super().__init__()
        self.weights = tuple(float(w) for w in weights)
        self.ignore_index = int(ignore_index)

    def terms(self, outputs: Sequence[paddle.Tensor], labels: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        """The weighted cross-entropy of each output, ``out0``, ``out1``, ... (their sum is the loss)."""
        if len(outputs) != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} outputs (one per weight), got {len(outputs)}")
        labels = labels.astype("int64")
        return {f"out{i}": w * masked_cross_entropy(o, labels, self.ignore_index)
                for i, (w, o) in enumerate(zip(self.weights, outputs))}

    def forward(self, outputs: Sequence[paddle.Tensor], labels: paddle.Tensor) -> paddle.Tensor:
        return sum(self.terms(outputs, labels).values())


@LOSSES.register("danet_ce")
def danet_ce(weights: Sequence[float] = (1.0, 1.0, 1.0), ignore_index: int = 255):
    return MultiOutputCrossEntropy(weights, ignore_index)
