"""FactSeg's CP (joint probability) loss with small object mining (Paddle twin of
``torch_ref/losses/factseg_joint.py``).

Loss (official ``module/loss.py::JointLoss`` with ``sample='SOM'``; docs/factseg.md):
``fgp = sigmoid(bi)``, ``clsp = softmax(fg)``; ``joint`` = ``clsp`` with channel 0 replaced by
``(1 - fgp) * clsp[:, 0]`` and channels 1.. by ``fgp * clsp[:, 1:]``; ``p = joint / sum_c joint``;
per-pixel NLL of ``log p`` (0 at ignored pixels); then SOM: ``k = int(ratio * all pixels, ignored
included)``, the k largest per-pixel losses, exact zeros dropped, ``sum / (count + 1e-6)``.

The same formula is evaluated in log space: ``log joint = log_softmax(fg) + log_sigmoid(+-bi)`` and
``log p = log joint - logsumexp(log joint)``. It equals the official expression in exact arithmetic
and agrees with it to float32 rounding (``alignment/check_factseg_modes.py`` measures it against a
transcription of the official code), but stays finite where the official float32 ``log(joint / Z)``
underflows: ``log(0) = -inf`` for a pixel whose true class is ~88 nats below the best one, ``0 / 0`` where
every joint term underflows, which makes the official loss ``inf`` or NaN. Sums over pixels are accumulated
in float64 on both sides (``reduction.py``: Paddle's CPU float32 mean and partial sums drift ~1e-6 and more).

Modes — three ways to build ``joint`` from ``log_softmax(fg)`` (all give the same loss and gradients):

- ``"pylayer"``: ``joint = Clone.apply(log_clsp)`` then both channel slices are overwritten in place.
  ``Clone`` is a custom ``paddle.autograd.PyLayer`` whose forward copies and whose backward returns
  ZEROS. Why: the official PyTorch code clones ``clsp`` and then overwrites EVERY element of the clone
  (channel 0 and channels 1..), so the clone's own values never reach the loss and the gradient through
  the clone is exactly zero; ``clsp`` gets its gradient only through the two assigned expressions.
  Paddle releases before the in-place assignment (``set_value``) gradient was made correct (< 2.2; the
  AI Studio FactSeg reproduction ran on such a release) did not deliver that zero through the clone,
  which adds a spurious term to ``d loss / d clsp`` (``alignment/check_factseg_modes.py`` simulates an
  un-zeroed clone gradient: the class-logit gradient is then off by ~100 %). A Clone whose backward
  returns zeros forces the correct value. It is correct ONLY because every element is overwritten
  afterwards: a partial overwrite would need the gradient of the kept entries
  (``tests/test_factseg.py::test_pylayer_clone_is_only_valid_for_a_full_overwrite``). Modern Paddle
  (verified 2.6.2 and 3.3.1) zeroes the overwritten region in ``set_value``'s backward, so the plain clone
  gives identical results (bit for bit here); the PyLayer is kept because the reproduction's design
  names it.
- ``"inplace"``: plain ``clone()`` + the two slice assignments (the official PyTorch form).
- ``"concat"``: ``concat([bg, fg], axis=1)``, no clone and no in-place op.

Ties in SOM: the loss VALUE depends only on the multiset of the k largest losses, which is unique, so
tie order cannot change it. The GRADIENT goes to the selected pixels, and among pixels with a loss equal
to the k-th largest the frameworks' ``topk`` pick different ones. Here the selection is made explicit
and identical on both sides: every pixel above the k-th largest value, then the tied pixels in
ascending flat (b, h, w) index order until k are chosen — a stable sort by (loss descending, index
ascending). Only the k-th value comes from ``topk`` (a value, not an index).

Inverse-weight option (the official ``InverseWeightCrossEntroyLoss`` weights): per batch, ``p_c`` =
fraction of the valid pixels labelled c, ``w_c = 1 / ln(1.02 + p_c)`` (no gradient); every pixel's loss is
multiplied by ``w_label``. With SOM the weighted losses are mined; without SOM the mean is
``sum(w * loss) / sum(w)`` over valid pixels (torch's weighted cross-entropy convention).

Args of ``build_loss("factseg_joint", ...)``:
    ratio (float): SOM keep ratio. Default 0.1 (iSAID config; the official class default is 0.2).
    ignore_index (int): label value without loss. Default 255.
    mode (str): "pylayer", "inplace" or "concat". Default "pylayer".
    inverse_weight (bool): inverse class-frequency weights. Default False.
    som (bool): small object mining; False = mean over valid pixels. Default True.

Call: ``loss(outputs, labels)`` with ``outputs = (fg_logits (B, C, H, W), bi_logits (B, 1, H, W)[,
anything])`` and ``labels (B, H, W)`` int. Labels outside ``0..C-1`` and ``ignore_index`` raise.

Deviations from the official code: log-space evaluation (above); deterministic tie selection; pixel sums
accumulated in float64; float16 / bfloat16 logits (AMP) cast to float32 first; labels checked; an empty
selection (k = 0) gives 0 (official: 0 / 1e-6 = 0 as well); with ``som=False`` an all-ignored batch gives 0
(official: 0 / 0).
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import paddle
from paddle import nn
from paddle.autograd import PyLayer

from ..registry import LOSSES
from .cross_entropy import exact_log_softmax
from .reduction import accurate_sum

MODES = ("pylayer", "inplace", "concat")


class Clone(PyLayer):
    """``x.clone()`` whose backward returns zeros: valid only when the clone is fully overwritten."""

    @staticmethod
    def forward(ctx, x: paddle.Tensor) -> paddle.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: paddle.Tensor) -> paddle.Tensor:
        return paddle.zeros_like(grad)


def log_sigmoid(x: paddle.Tensor) -> paddle.Tensor:
    """``log(sigmoid(x))`` without overflow: ``min(x, 0) - log1p(exp(-|x|))``."""
    return paddle.minimum(x, paddle.zeros_like(x)) - paddle.log1p(paddle.exp(-paddle.abs(x)))


def log_sum_exp(x: paddle.Tensor, axis: int = 1) -> paddle.Tensor:
    peak = x.max(axis=axis, keepdim=True).detach()
    return peak + paddle.log(paddle.exp(x - peak).sum(axis=axis, keepdim=True))


def joint_log_probability(fg_logits: paddle.Tensor, bi_logits: paddle.Tensor,
                          mode: str = "pylayer") -> paddle.Tensor:
    """``log p`` (B, C, H, W) of the joint probability, built in the given mode (module docstring)."""
    log_cls = exact_log_softmax(fg_logits, axis=1)  # b, c, h, w
    background = log_sigmoid(-bi_logits) + log_cls[:, :1]  # b, 1, h, w
    foreground = log_sigmoid(bi_logits) + log_cls[:, 1:]  # b, c-1, h, w
    if mode == "concat":
        joint = paddle.concat([background, foreground], axis=1)
    elif mode in ("pylayer", "inplace"):
        joint = Clone.apply(log_cls) if mode == "pylayer" else log_cls.clone()
        joint[:, :1] = background
        joint[:, 1:] = foreground
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return joint - log_sum_exp(joint, axis=1)


def check_labels(labels: paddle.Tensor, num_classes: int, ignore_index: int) -> None:
    bad = ((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)
    if bool(bad.any()):
        values = sorted({int(v) for v in labels[bad].numpy().ravel()[:1000]})
        raise ValueError(f"labels hold {values[:10]} outside 0..{num_classes - 1} and ignore_index "
                         f"{ignore_index} ({int(bad.sum())} pixels)")


def inverse_class_weights(labels: paddle.Tensor, num_classes: int, dtype: Any) -> paddle.Tensor:
    """``1 / ln(1.02 + p_c)`` from the batch frequencies of the valid labels (official rule)."""
    valid = (labels >= 0) & (labels < num_classes)
    counts = paddle.bincount(labels[valid].reshape([-1]), minlength=num_classes)[:num_classes]
    total = float(max(int(valid.sum()), 1))
    frequency = counts.astype(dtype) / total
    return 1.0 / paddle.log(1.02 + frequency)


def som_select(losses: paddle.Tensor, k: int) -> paddle.Tensor:
    """Mask of the k largest entries of a flat tensor, ties by ascending index, exact zeros removed."""
    values = losses.detach()
    kth = paddle.topk(values, k)[0][k - 1]
    above = values > kth
    tied = values == kth
    need = k - above.astype("int64").sum()
    tied_rank = paddle.cumsum(tied.astype("int64"), axis=0)
    chosen = above | (tied & (tied_rank <= need))
    return chosen & (values != 0)


def small_object_mining(losses: paddle.Tensor, ratio: float) -> paddle.Tensor:
    """Official SOM: mean of the nonzero losses among the top ``int(ratio * numel)``."""
    flat = losses.reshape([-1])
    k = min(int(ratio * flat.shape[0]), flat.shape[0])
    if k <= 0:
        return flat.sum() * 0.0
    selected = som_select(flat, k)
    total = accurate_sum(paddle.where(selected, flat, paddle.zeros_like(flat)))
    return total / (selected.astype(flat.dtype).sum() + 1e-6)


class FactSegJointLoss(nn.Layer):
    """Joint-probability NLL + SOM (module docstring)."""

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

    def pixel_losses(self, fg_logits: paddle.Tensor, bi_logits: paddle.Tensor,
                     labels: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """(per-pixel loss (B, H, W), per-pixel weight (B, H, W)); both 0 at ignored pixels."""
        num_classes = fg_logits.shape[1]
        check_labels(labels, num_classes, self.ignore_index)
        valid = labels != self.ignore_index
        safe = paddle.where(valid, labels, paddle.zeros_like(labels))
        log_p = joint_log_probability(fg_logits, bi_logits, self.mode)
        nll = -paddle.take_along_axis(log_p, safe.unsqueeze(1), axis=1).squeeze(1)  # b, h, w
        zeros = paddle.zeros_like(nll)
        if self.inverse_weight:
            class_weights = inverse_class_weights(labels, num_classes, nll.dtype)
            weight = paddle.where(valid, paddle.gather(class_weights, safe.reshape([-1])).reshape(safe.shape),
                                  zeros)
        else:
            weight = valid.astype(nll.dtype)
        return paddle.where(valid, nll * weight, zeros), weight

    def forward(self, outputs: Sequence[paddle.Tensor], labels: paddle.Tensor) -> paddle.Tensor:
        if not isinstance(outputs, (list, tuple)) or len(outputs) < 2:
            raise ValueError("factseg_joint expects outputs (fg_logits, bi_logits[, ...]); got "
                             f"{type(outputs).__name__} (build the model with output='logits', or train mode)")
        # Under AMP the logits may arrive in float16 / bfloat16; the loss runs in float32 (the official apex
        # O1 run computes softmax / log / nll in float32 too).
        fg_logits, bi_logits = (o.astype("float32") if o.dtype in (paddle.float16, paddle.bfloat16) else o
                                for o in outputs[:2])
        labels = labels.astype("int64")
        if labels.ndim == 4 and labels.shape[1] == 1:
            labels = labels.squeeze(1)
        if bi_logits.shape[1] != 1 or list(labels.shape) != [fg_logits.shape[0], *fg_logits.shape[2:]]:
            raise ValueError(f"shapes do not fit: fg {fg_logits.shape}, bi {bi_logits.shape}, "
                             f"labels {labels.shape}")
        losses, weight = self.pixel_losses(fg_logits, bi_logits, labels)
        if self.som:
            return small_object_mining(losses, self.ratio)
        # Mean over valid pixels (weighted: sum(w * l) / sum(w)); an all-ignored batch gives 0.
        return accurate_sum(losses) / paddle.clip(accurate_sum(weight), min=1.0)


@LOSSES.register("factseg_joint")
def factseg_joint(ratio: float = 0.1, ignore_index: int = 255, mode: str = "pylayer",
                  inverse_weight: bool = False, som: bool = True) -> FactSegJointLoss:
    return FactSegJointLoss(ratio, ignore_index, mode, inverse_weight, som)
