"""Paddle inference protocols and dataset-level evaluation.

Segmentation (``SegProtocol`` + ``predict_scores``), following the official DANet ``MultiEvalModule``
(2019 tree; docs/danet.md) step by step:

1. for each scale: size from ``rsrepro.windows.danet_scaled_size`` (long side ``ceil(base_size *
   scale)``; with ``base_size=None`` the image's own long side), bilinear resize with
   align_corners=True (skipped when the size is unchanged: the resize would be the identity);
2. ``mode="whole"``: one forward pass of the resized image (no padding);
   ``mode="slide"`` with ``window_rule="danet"``: if both sides fit in the crop, pad to the crop (with
   the value that is black after normalisation, ``-mean/std``), run once, crop back; otherwise pad
   any side shorter than the crop, run every ``danet_windows`` window padded to the crop, crop each
   output back to its window, and average overlapping windows by their count;
   ``window_rule="factseg"``: FactSeg's windows (``factseg_windows``) on the unpadded image, each
   ZERO-padded (after normalisation, as the official ``th_divisible_pad``) to ``pad_multiple`` (or to
   the crop), summed and averaged by count. Dataset-level evaluation with this rule does not come
   here: ``SegmentationTask.build_evaluator`` returns the streamed ``factseg_eval.FactSegEvaluator``
   (same windows, padding and merge; full-size images need no full-size canvas); this path serves
   ``tools/predict.py`` and flip / multi-scale experiments;
3. the window score: ``SEG_SCORES[score]``. DANet's "exp": ``exp(logit(x) + flip(logit(flip(x))))``
   with flip, ``exp(logit(x))`` without (official ``module_inference``); "softmax" and "logits" are
   offered for other models; "fused" is FactSeg's fused class probability (the eval-mode output, or
   fused from ``(fg, bi)`` logits);
4. scores are resized back to the original size (align_corners=True) and SUMMED over scales;
   the prediction is the argmax.

The official code asserts batch size 1; here any batch of equally sized images works.

Change detection (``ChangeDetectionEvaluator``): a per-pixel change score from the model outputs
(``CD_SCORES``: "softmax" = probability of class 1 of 2-class logits, LSNet; "l2_distance" =
``paddle_models.dasnet.change_distance``, the official ``||e0 - e1 + 1e-6||_2`` of a pair of
embeddings, resized to the label size (bilinear, align_corners=True), DASNet), a dataset-level
``rsrepro.metrics.ThresholdSweep`` (max-F, best threshold, P/R arrays, PR-AUC), P/R/F1/OA/IoU at a
fixed threshold, at the best threshold of the sweep, or at the argmax of the logits; the P-R curve as
PNG and every array in ``metric.json``.

Both evaluators shard a dataset over data-parallel processes (sample ``i`` on rank ``i % world``,
no padding, so nothing is counted twice) and merge the integer counts of all ranks.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np
import paddle

from rsrepro.metrics import (
    BinaryConfusion,
    ConfusionMatrix,
    ThresholdSweep,
    binary_scores,
    format_iou_table,
    plot_pr_curve,
    save_metric_json,
    segmentation_scalars,
)
from rsrepro.windows import (
    WINDOW_RULES,
    as_pair,
    danet_padded_size,
    danet_scaled_size,
    danet_stride,
)

from ..layers import resize
from .distributed import gather_merge, iterate_samples, progress_bar, unwrap_model, world
from .scores import CD_SCORES, SEG_SCORES, SegScore, as_outputs, resolve_thresholds

__all__ = [
    "SegScore",
    "SEG_SCORES",
    "SegProtocol",
    "as_outputs",
    "pad_to",
    "window_scores",
    "slide_scores",
    "predict_scores",
    "predict_labels",
    "SegmentationEvaluator",
    "CD_SCORES",
    "resolve_thresholds",
    "ChangeDetectionEvaluator",
    "iterate_samples",
]


# ------------------------------------------------------------------------------- segmentation
@dataclass
class SegProtocol:
    """A segmentation inference protocol (module docstring). Build it with :meth:`from_config`."""

    mode: str = "whole"
    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    base_size: int | None = None
    crop_size: Tuple[int, int] | None = None
    stride: Tuple[int, int] | None = None
    window_rule: str = "danet"
    pad_multiple: int | None = None
    score: str = "exp"
    output_index: int = 0
    pad_value: Tuple[float, ...] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"eval mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.score not in SEG_SCORES:
            raise ValueError(f"unknown eval score {self.score!r}; known: {sorted(SEG_SCORES)}")
        if self.window_rule not in WINDOW_RULES:
            raise ValueError(f"unknown window rule {self.window_rule!r}; known: {sorted(WINDOW_RULES)}")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive, got {self.scales!r}")
        self.scales = tuple(float(s) for s in self.scales)
        if self.crop_size is not None:
            self.crop_size = as_pair(self.crop_size, "eval.crop_size")
        if self.stride is not None:
            self.stride = as_pair(self.stride, "eval.stride")
        if self.mode == "slide" and self.crop_size is None:
            raise ValueError("eval mode 'slide' needs a crop_size")

    @classmethod
    def from_config(cls, eval_cfg: Mapping[str, Any], mean: Sequence[float] = (0.485, 0.456, 0.406),
                    std: Sequence[float] = (0.229, 0.224, 0.225)) -> SegProtocol:
        scales = eval_cfg.get("ms_scales") if eval_cfg.get("multi_scales") else eval_cfg.get("scales", [1.0])
        crop = eval_cfg.get("crop_size")
        stride = eval_cfg.get("stride")
        return cls(
            mode=eval_cfg.get("mode", "whole"),
            scales=tuple(scales),
            flip=bool(eval_cfg.get("flip", False)),
            base_size=eval_cfg.get("base_size"),
            crop_size=tuple(crop) if isinstance(crop, list) else crop,
            stride=tuple(stride) if isinstance(stride, list) else stride,
            window_rule=eval_cfg.get("window_rule", "danet"),
            pad_multiple=eval_cfg.get("pad_multiple"),
            score=eval_cfg.get("score", "exp"),
            output_index=int(eval_cfg.get("output_index", 0)),
            pad_value=tuple(-float(m) / float(s) for m, s in zip(mean, std)),
        )

    def effective_stride(self) -> Tuple[int, int]:
        if self.stride is not None:
            return self.stride
        return danet_stride(self.crop_size, len(self.scales))

    def describe(self) -> Dict[str, Any]:
        out = asdict(self)
        if self.mode == "slide":
            out["stride"] = self.effective_stride()
        return out


def pad_to(x: paddle.Tensor, height: int, width: int, pad_value: Sequence[float]) -> paddle.Tensor:
    """Pad bottom/right to (height, width) with a per-channel value (no-op if already that size)."""
    b, c, h, w = x.shape
    if (h, w) == (height, width):
        return x
    if len(pad_value) != c:
        raise ValueError(f"pad_value has {len(pad_value)} channels, the image {c}")
    fill = paddle.to_tensor(np.asarray(pad_value, dtype=np.float32), dtype=x.dtype).reshape([1, c, 1, 1])
    canvas = fill.expand([b, c, height, width]).clone()
    canvas[:, :, :h, :w] = x
    return canvas


def window_scores(model: paddle.nn.Layer, x: paddle.Tensor, protocol: SegProtocol) -> paddle.Tensor:
    """Score of one (padded) input, with the flipped pass when ``protocol.flip``."""
    score = SEG_SCORES[protocol.score]
    pre = score.pre(as_outputs(model(x)), protocol.output_index)
    if protocol.flip:
        flipped = score.pre(as_outputs(model(paddle.flip(x, axis=[3]))), protocol.output_index)
        pre = pre + paddle.flip(flipped, axis=[3])
    return score.post(pre)


def slide_scores(model: paddle.nn.Layer, image: paddle.Tensor, protocol: SegProtocol) -> paddle.Tensor:
    """Sliding-window scores of one scaled image (B, C, h, w) -> (B, K, h, w)."""
    _, _, h, w = image.shape
    crop_h, crop_w = protocol.crop_size
    stride = protocol.effective_stride()
    if protocol.window_rule == "danet":
        if h <= crop_h and w <= crop_w:
            padded = pad_to(image, crop_h, crop_w, protocol.pad_value)
            return window_scores(model, padded, protocol)[:, :, :h, :w]
        ph, pw = danet_padded_size(h, w, (crop_h, crop_w))
        source = pad_to(image, ph, pw, protocol.pad_value)
        windows = WINDOW_RULES["danet"](ph, pw, (crop_h, crop_w), stride)
    else:
        ph, pw = h, w
        source = image
        windows = WINDOW_RULES[protocol.window_rule](h, w, (crop_h, crop_w), stride)
    # FactSeg pads each window with zeros AFTER normalisation; DANet with the normalised black.
    window_pad = protocol.pad_value if protocol.window_rule == "danet" else (0.0,) * int(image.shape[1])
    total = None
    count = paddle.zeros([1, 1, ph, pw], dtype=image.dtype)
    for y0, y1, x0, x1 in windows:
        wh, ww = y1 - y0, x1 - x0
        if protocol.pad_multiple:
            target_h = int(math.ceil(wh / protocol.pad_multiple)) * protocol.pad_multiple
            target_w = int(math.ceil(ww / protocol.pad_multiple)) * protocol.pad_multiple
        else:
            target_h, target_w = max(wh, crop_h), max(ww, crop_w)
        piece = pad_to(source[:, :, y0:y1, x0:x1], target_h, target_w, window_pad)
        out = window_scores(model, piece, protocol)[:, :, :wh, :ww]
        if total is None:
            total = paddle.zeros([out.shape[0], out.shape[1], ph, pw], dtype=out.dtype)
        total[:, :, y0:y1, x0:x1] += out
        count[:, :, y0:y1, x0:x1] += 1
    if float(count.min()) == 0:
        raise RuntimeError(f"window rule {protocol.window_rule!r} left pixels uncovered at {ph}x{pw}")
    return (total / count)[:, :, :h, :w]


def scale_size(height: int, width: int, protocol: SegProtocol, scale: float) -> Tuple[int, int]:
    """Image size at ``scale`` (the original size for scale 1 without a base size)."""
    if protocol.base_size is None:
        if scale == 1.0:
            return height, width
        return danet_scaled_size(height, width, max(height, width), scale)
    return danet_scaled_size(height, width, protocol.base_size, scale)


@paddle.no_grad()
def predict_scores(model: paddle.nn.Layer, image: paddle.Tensor, protocol: SegProtocol) -> paddle.Tensor:
    """Scores (B, K, H, W) at the input size, summed over scales (module docstring)."""
    _, _, h, w = image.shape
    total = None
    for scale in protocol.scales:
        sh, sw = scale_size(h, w, protocol, scale)
        current = image if (sh, sw) == (h, w) else resize.bilinear(image, (sh, sw))
        if protocol.mode == "whole":
            scores = window_scores(model, current, protocol)
        else:
            scores = slide_scores(model, current, protocol)
        if (sh, sw) != (h, w):
            scores = resize.bilinear(scores, (h, w))
        total = scores if total is None else total + scores
    return total


def predict_labels(model: paddle.nn.Layer, image: paddle.Tensor, protocol: SegProtocol) -> np.ndarray:
    """Argmax class map (B, H, W) int64."""
    return predict_scores(model, image, protocol).argmax(axis=1).numpy().astype(np.int64)


class SegmentationEvaluator:
    """Dataset-level segmentation metrics under a :class:`SegProtocol`.

    Args:
        protocol: the inference protocol.
        num_classes: classes of the confusion matrix.
        ignore_index: label value skipped. Default 255.
        class_names: names for the IoU table / JSON.
        fg_start: also report the mean IoU of classes ``fg_start..`` (FactSeg: 1).
    """

    def __init__(self, protocol: SegProtocol, num_classes: int, ignore_index: int | None = 255,
                 class_names: Sequence[str] | None = None, fg_start: int | None = None) -> None:
        self.protocol = protocol
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.fg_start = fg_start

    def evaluate(self, model: paddle.nn.Layer, dataset: Any, batch_size: int = 1, num_workers: int = 0,
                 max_samples: int | None = None, progress: bool = True) -> Dict[str, Any]:
        """Run the protocol over the dataset; returns ``ConfusionMatrix.summary`` plus ``protocol``,
        ``samples`` and ``seconds``."""
        net = unwrap_model(model)
        was_training = net.training
        net.eval()
        matrix = ConfusionMatrix(self.num_classes, self.ignore_index)
        start = time.perf_counter()
        total = len(dataset) if max_samples is None else min(len(dataset), max_samples)
        samples = 0
        try:
            batches = iterate_samples(dataset, batch_size, num_workers, max_samples)
            steps = math.ceil(len(range(world()[0], total, world()[1])) / batch_size)
            for image, label in progress_bar(batches, steps, "eval", progress):
                pred = predict_labels(net, image, self.protocol)
                matrix.update(pred, label.numpy())
                samples += int(image.shape[0])
        finally:
            if was_training:
                net.train()
        matrix = gather_merge(matrix)
        summary = matrix.summary(self.class_names, self.fg_start)
        summary["protocol"] = self.protocol.describe()
        summary["samples"] = total
        summary["seconds"] = time.perf_counter() - start
        summary["confusion_matrix"] = matrix.matrix
        return summary

    scalars = staticmethod(segmentation_scalars)

    @staticmethod
    def format(summary: Mapping[str, Any]) -> str:
        return format_iou_table(dict(summary))


# ---------------------------------------------------------------------------- change detection
class ChangeDetectionEvaluator:
    """Dataset-level change-detection metrics (module docstring).

    Args:
        score: ``CD_SCORES`` name. Default "softmax".
        output_index: which model output the score reads. Default -1 (the last).
        thresholds: sweep spec (:func:`resolve_thresholds`); None = the score's default.
        decision: "threshold" (fixed ``threshold``, or the best of the sweep when None) or "argmax".
        threshold: fixed threshold for the P/R/F1/OA/IoU block.
        ignore_index: label value skipped. Default 255.
    """

    def __init__(self, score: str = "softmax", output_index: int = -1, thresholds: Any = None,
                 decision: str = "threshold", threshold: float | None = None,
                 ignore_index: int | None = 255) -> None:
        if score not in CD_SCORES:
            raise ValueError(f"unknown cd_score {score!r}; known: {sorted(CD_SCORES)}")
        if decision not in ("threshold", "argmax"):
            raise ValueError(f"decision must be 'threshold' or 'argmax', got {decision!r}")
        self.score = score
        self.output_index = int(output_index)
        self.thresholds = resolve_thresholds(thresholds, CD_SCORES[score].default_thresholds)
        self.decision = decision
        self.threshold = threshold
        self.ignore_index = ignore_index

    def scores(self, model: paddle.nn.Layer, t0: paddle.Tensor, t1: paddle.Tensor,
               size: Tuple[int, int]) -> Tuple[paddle.Tensor, paddle.Tensor | None]:
        return CD_SCORES[self.score].fn(as_outputs(model(t0, t1)), self.output_index, size)

    @paddle.no_grad()
    def evaluate(self, model: paddle.nn.Layer, dataset: Any, batch_size: int = 1, num_workers: int = 0,
                 max_samples: int | None = None, progress: bool = True,
                 out_dir: str | None = None) -> Dict[str, Any]:
        """Sweep + fixed-decision scores; writes ``pr_curve.png`` and ``metric.json`` to ``out_dir``."""
        net = unwrap_model(model)
        was_training = net.training
        net.eval()
        sweep = ThresholdSweep(self.thresholds, ignore_index=self.ignore_index)
        fixed = BinaryConfusion(self.ignore_index)
        start = time.perf_counter()
        total = len(dataset) if max_samples is None else min(len(dataset), max_samples)
        try:
            steps = math.ceil(len(range(world()[0], total, world()[1])) / batch_size)
            batches = iterate_samples(dataset, batch_size, num_workers, max_samples)
            for t0, t1, label in progress_bar(batches, steps, "eval", progress):
                label_np = label.numpy()
                score, logits = self.scores(net, t0, t1, tuple(label_np.shape[-2:]))
                score_np = score.numpy()
                sweep.update(score_np, label_np)
                if self.decision == "argmax":
                    if logits is None:
                        raise ValueError(f"decision 'argmax' needs logits; cd_score {self.score!r} "
                                         "gives a distance (use decision: threshold)")
                    fixed.update_from_logits(logits.numpy(), label_np)
                elif self.threshold is not None:
                    fixed.update_from_scores(score_np, label_np, self.threshold)
        finally:
            if was_training:
                net.train()
        sweep = gather_merge(sweep)
        result = sweep.result()
        out: Dict[str, Any] = {"sweep": result, "score": self.score, "samples": total}
        if self.decision == "argmax":
            fixed = gather_merge(fixed)
            out["fixed"] = {**fixed.result(), "decision": "argmax"}
        elif self.threshold is not None:
            fixed = gather_merge(fixed)
            out["fixed"] = {**fixed.result(), "decision": f"score >= {self.threshold}"}
        elif result["best_index"] is not None:
            i = result["best_index"]
            out["fixed"] = {**binary_scores(int(result["tp"][i]), int(result["fp"][i]), int(result["fn"][i]),
                                            int(result["tn"][i])),
                            "decision": f"score >= {result['best_threshold']:.6g} (best of the sweep, "
                                        "chosen on this split)"}
        out["seconds"] = time.perf_counter() - start
        if out_dir is not None and world()[0] == 0:
            os.makedirs(out_dir, exist_ok=True)
            plot_pr_curve(result, os.path.join(out_dir, "pr_curve.png"))
            save_metric_json(out, os.path.join(out_dir, "metric.json"))
        return out

    @staticmethod
    def scalars(result: Mapping[str, Any]) -> Dict[str, float]:
        sweep = result["sweep"]
        out = {"max_f": sweep["max_f"], "pr_auc": sweep["pr_auc"]}
        if sweep.get("best_threshold") is not None:
            out["best_threshold"] = sweep["best_threshold"]
        for key in ("precision", "recall", "f1", "oa", "iou"):
            if "fixed" in result:
                out[key] = result["fixed"][key]
        return out

    @staticmethod
    def format(result: Mapping[str, Any]) -> str:
        sweep = result["sweep"]
        lines = [f"max-F {sweep['max_f']:.4f} at threshold {sweep['best_threshold']} "
                 f"(P {sweep['best_precision']:.4f}, R {sweep['best_recall']:.4f}), PR-AUC {sweep['pr_auc']:.4f}, "
                 f"{len(sweep['thresholds'])} thresholds, {sweep['pos_num']} changed / {sweep['neg_num']} "
                 "unchanged pixels"]
        if "fixed" in result:
            f = result["fixed"]
            lines.append(f"{f['decision']}: P {f['precision']:.4f}  R {f['recall']:.4f}  F1 {f['f1']:.4f}  "
                         f"OA {f['oa']:.4f}  IoU {f['iou']:.4f}")
        return "\n".join(lines)
