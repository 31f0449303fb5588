"""FactSeg's CP (joint probability) loss with small object mining — torch reference.

Same loss, modes, tie rule and options as ``paddle_models/losses/factseg_joint.py`` (whose docstring
explains the log-space evaluation, the Clone op and the SOM tie rule). ``"inplace"`` is the official
construction (clone, then both channel slices assigned in place); ``"pylayer"`` is the twin of the Paddle
PyLayer, a ``torch.autograd.Function`` whose backward returns zeros; ``"concat"`` concatenates.

``official_joint_loss`` is a direct transcription of the official ``JointLoss`` + ``som`` semantics
(probability space, in-place clone, ``topk``) used as the oracle by the tests and by
``alignment/check_factseg_modes.py``: every mode of both frameworks is measured against it.

Args of ``build_loss("factseg_joint", ...)``: ratio (0.1), ignore_index (255), mode ("pylayer"),
inverse_weight (False), som (True); see the Paddle twin.

Deviations from the official code: as the Paddle twin (log space, deterministic ties, label check).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import LOSSES
from .reduction import accurate_sum

MODES = ("pylayer", "inplace", "concat")


class Clone(torch.autograd.Function):
    """``x.clone()`` whose backward returns zeros: valid only when the clone is fully overwritten."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad)


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``log(sigmoid(x))`` without overflow: ``min(x, 0) - log1p(exp(-|x|))``."""
    return torch.minimum(x, torch.zeros_like(x)) - torch.log1p(torch.exp(-torch.abs(x)))


def log_sum_exp(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    peak = x.amax(dim=dim, keepdim=True).detach()
    return peak + torch.log(torch.exp(x - peak).sum(dim=dim, keepdim=True))


def joint_log_probability(fg_logits: torch.Tensor, bi_logits: torch.Tensor,
                          mode: str = "pylayer") -> torch.Tensor:
    """``log p`` (B, C, H, W) of the joint probability, built in the given mode."""
    log_cls = F.log_softmax(fg_logits, dim=1)  # b, c, h, w
    background = log_sigmoid(-bi_logits) + log_cls[:, :1]  # b, 1, h, w
    foreground = log_sigmoid(bi_logits) + log_cls[:, 1:]  # b, c-1, h, w
    if mode == "concat":
        joint = torch.cat([background, foreground], dim=1)
    elif mode in ("pylayer", "inplace"):
        joint = Clone.apply(log_cls) if mode == "pylayer" else log_cls.clone()
        joint[:, :1] = background
        joint[:, 1:] = foreground
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return joint - log_sum_exp(joint, dim=1)


def check_labels(labels: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    bad = ((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)
    if bool(bad.any()):
        values = sorted({int(v) for v in labels[bad].flatten()[:1000].tolist()})
        raise ValueError(f"labels hold {values[:10]} outside 0..{num_classes - 1} and ignore_index "
                         f"{ignore_index} ({int(bad.sum())} pixels)")


def inverse_class_weights(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``1 / ln(1.02 + p_c)`` from the batch frequencies of the valid labels (official rule)."""
    valid = (labels >= 0) & (labels < num_classes)
    counts = torch.bincount(labels[valid].flatten(), minlength=num_classes)[:num_classes]
    total = float(max(int(valid.sum()), 1))
    frequency = counts.to(dtype) / total
    return 1.0 / torch.log(1.02 + frequency)


def som_select(losses: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the k largest entries of a flat tensor, ties by ascending index, exact zeros removed."""
    values = losses.detach()
    kth = torch.topk(values, k)[0][k - 1]
    above = values > kth
    tied = values == kth
    need = k - above.long().sum()
    tied_rank = torch.cumsum(tied.long(), dim=0)
    chosen = above | (tied & (tied_rank <= need))
    return chosen & (values != 0)


def small_object_mining(losses: torch.Tensor, ratio: float) -> torch.Tensor:
    """Official SOM: mean of the nonzero losses among the top ``int(ratio * numel)``."""
    flat = losses.reshape(-1)
    k = min(int(ratio * flat.shape[0]), flat.shape[0])
    if k <= 0:
        return flat.sum() * 0.0
    selected = som_select(flat, k)
    total = accurate_sum(torch.where(selected, flat, torch.zeros_like(flat)))
    return total / (selected.to(flat.dtype).sum() + 1e-6)


class FactSegJointLoss(nn.Module):
    """Joint-probability NLL + SOM (see the Paddle twin's module docstring)."""

    def __init__(self, ratio: float = 0.1, ignore_index: int = 255, mode: str = "pylayer",
                 inverse_weight: bool = False, som: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
        self.ratio = float(ratio)
        self.ignore_index = int(ignore_index)
        self.mode = mode
        self.inverse_weight = bool(inverse_weight)
        self.som = bool(som)

    def pixel_losses(self, fg_logits: torch.Tensor, bi_logits: torch.Tensor,
                     labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(per-pixel loss (B, H, W), per-pixel weight (B, H, W)); both 0 at ignored pixels."""
        num_classes = fg_logits.shape[1]
        check_labels(labels, num_classes, self.ignore_index)
        valid = labels != self.ignore_index
        safe = torch.where(valid, labels, torch.zeros_like(labels))
        log_p = joint_log_probability(fg_logits, bi_logits, self.mode)
        nll = -torch.gather(log_p, 1, safe.unsqueeze(1)).squeeze(1)  # b, h, w
        zeros = torch.zeros_like(nll)
        if self.inverse_weight:
            class_weights = inverse_class_weights(labels, num_classes, nll.dtype)
            weight = torch.where(valid, class_weights[safe], zeros)
        else:
            weight = valid.to(nll.dtype)
        return torch.where(valid, nll * weight, zeros), weight

    def forward(self, outputs: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        if not isinstance(outputs, (list, tuple)) or len(outputs) < 2:
            raise ValueError("factseg_joint expects outputs (fg_logits, bi_logits[, ...]); got "
                             f"{type(outputs).__name__} (build the model with output='logits', or train mode)")
        # Under autocast the logits may arrive in float16 / bfloat16; the loss runs in float32 (as apex O1).
        fg_logits, bi_logits = (o.float() if o.dtype in (torch.float16, torch.bfloat16) else o for o in outputs[:2])
        labels = labels.long()
        if labels.ndim == 4 and labels.shape[1] == 1:
            labels = labels.squeeze(1)
        if bi_logits.shape[1] != 1 or tuple(labels.shape) != (fg_logits.shape[0], *fg_logits.shape[2:]):
            raise ValueError(f"shapes do not fit: fg {tuple(fg_logits.shape)}, bi {tuple(bi_logits.shape)}, "
                             f"labels {tuple(labels.shape)}")
        losses, weight = self.pixel_losses(fg_logits, bi_logits, labels)
        if self.som:
            return small_object_mining(losses, self.ratio)
        # Mean over valid pixels (weighted: sum(w * l) / sum(w)); an all-ignored batch gives 0.
        return accurate_sum(losses) / torch.clamp(accurate_sum(weight), min=1.0)


@LOSSES.register("factseg_joint")
def factseg_joint(ratio: float = 0.1, ignore_index: int = 255, mode: str = "pylayer",
                  inverse_weight: bool = False, som: bool = True) -> FactSegJointLoss:
    return FactSegJointLoss(ratio, ignore_index, mode, inverse_weight, som)


def official_joint_loss(cls_pred: torch.Tensor, binary_pred: torch.Tensor, cls_true: torch.Tensor,
                        ratio: float = 0.2, ignore_index: int = 255) -> torch.Tensor:
    """The official ``JointLoss(sample='SOM')`` semantics, transcribed (oracle for the checks).

    Probability space: softmax, sigmoid, a clone of ``clsp`` with both channel slices overwritten in
    place, division by the class sum, ``log``, ``nll_loss(reduction='none')``; then ``topk`` of the
    flattened losses, nonzero ones summed and divided by their count + 1e-6. Which tied pixels ``topk``
    returns is unspecified, so gradients are only comparable on inputs without ties at the k-th value.
    """
    fgp = torch.sigmoid(binary_pred)
    clsp = torch.softmax(cls_pred, dim=1)
    joint = torch.clone(clsp)
    joint[:, 0, :, :] = (1 - fgp).squeeze(dim=1) * clsp[:, 0, :, :]
    joint[:, 1:, :, :] = fgp * clsp[:, 1:, :, :]
    p = joint / torch.sum(joint, dim=1, keepdim=True)
    losses = F.nll_loss(torch.log(p), cls_true.long(), ignore_index=ignore_index, reduction="none")
    flat = losses.reshape(-1)
    top, _ = flat.topk(int(ratio * flat.numel()), -1)
    keep = top != 0
    return torch.sum(top[keep]) / (keep.sum() + 1e-6)
