"""Evaluation metrics over numpy arrays, shared by evaluation, training and the alignment harness.

Framework-free (numpy only): pass numpy arrays, or anything ``np.asarray`` accepts (CPU torch/Paddle
tensors included). Everything accumulates integer counts over a whole split (dataset level), so the
result does not depend on the batch size, and accumulators can be summed across processes
(``merge`` / ``+``) for distributed evaluation.

Semantic segmentation (DANet on Cityscapes, FactSeg on iSAID):
    ConfusionMatrix(num_classes, ignore_index=255, invalid_label="error")
        .update(pred, label) / .merge(other) / + / .reset() / .from_matrix(matrix)
        .iou() .miou(mode) .pixel_accuracy() .class_accuracy() .class_precision()
        .mean_class_accuracy(mode) .kappa() .summary(class_names, fg_start)
    format_iou_table(summary, class_names=None) -> str

    mIoU conventions (``miou(mode=...)``):
      "all" (default, as official): the mean over ALL classes; a class absent from both the labels
        and the predictions (union 0) counts as IoU 0. The official DANet code gets this from
        ``inter / (np.spacing(1) + union)``, PaddleSeg from an explicit ``union == 0 -> 0``.
        Here IoU = inter / union with 0 where union == 0: identical to PaddleSeg, and to the
        official eps form whenever union >= 2 (for union == 1 the eps form gives 1 - 2.2e-16).
      "present": the mean over classes with union > 0 only (the FCN-style ``np.nanmean``).

Change detection (LSNet, DASNet, DASNet-V2), class 1 = changed:
    binary_scores(tp, fp, fn, tn) -> precision, recall, f1, oa, iou (+ the counts)
    BinaryConfusion(ignore_index=255): .update(pred, label), .update_from_logits(logits, label),
        .update_from_scores(score, label, threshold), .result()
    ThresholdSweep(thresholds, ignore_index=255, other_labels="error"): per-threshold counts of a
        distance/score map (changed iff d >= t), .update(score, label), .result() -> max-F etc.
    dasnet_official_thresholds(), dasnet_v2_thresholds()
    plot_pr_curve(result, path, title=None), save_metric_json(result, path)
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from .fileio import atomic_save, atomic_write_json

__all__ = [
    "ConfusionMatrix",
    "format_iou_table",
    "segmentation_scalars",
    "binary_scores",
    "BinaryConfusion",
    "ThresholdSweep",
    "dasnet_official_thresholds",
    "dasnet_v2_thresholds",
    "plot_pr_curve",
    "save_metric_json",
]

# Both in the official DASNet / KITTI-road code: precision = TP / (TP + FP + 1e-10),
# F = 2PR / (P + R + 1e-10).
_SWEEP_EPS = 1e-10


def _int_array(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise TypeError(
            f"{what} must hold integer class indices, got dtype {arr.dtype}"
            + (" (take the argmax of the logits first)" if arr.dtype.kind == "f" else "")
        )
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names}: shapes differ, {a.shape} vs {b.shape} (expected identical shapes)")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise in float64, 0 where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _preview(values: np.ndarray, limit: int = 8) -> str:
    uniq = np.unique(values)
    text = ", ".join(str(v) for v in uniq[:limit].tolist())
    return text + (", ..." if uniq.size > limit else "")


# --------------------------------------------------------------------------------------------------
# Semantic segmentation
# --------------------------------------------------------------------------------------------------


class ConfusionMatrix:
    """Dataset-level confusion matrix; rows = label class, columns = predicted class.

    Args:
        num_classes (int): number of classes n; valid predictions and labels are 0..n-1.
        ignore_index (int or None): label value that is skipped (255 for Cityscapes/iSAID; DANet's
            official code maps it to -1, which works too). None: nothing is skipped. Default 255.
        invalid_label (str): what to do with a label outside [0, n) that is not ``ignore_index``:
            "error" (default) raises; "ignore" skips those pixels, warns with the count and keeps
            the running total in ``invalid_label_count``.

    Predictions outside [0, n) always raise: they mean a wrong ``num_classes`` or a bug upstream.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255, invalid_label: str = "error"):
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if invalid_label not in ("error", "ignore"):
            raise ValueError(f"invalid_label must be 'error' or 'ignore', got {invalid_label!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            raise ValueError(
                f"ignore_index {self.ignore_index} is a valid class of a {self.num_classes}-class problem"
            )
        self.invalid_label = invalid_label
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.invalid_label_count = 0

    # ---- accumulation ----
    def update(self, pred: Any, label: Any) -> ConfusionMatrix:
        """Add a batch of any shape: ``pred`` and ``label`` integer arrays of the same shape."""
        n = self.num_classes
        pred = _int_array(pred, "pred")
        label = _int_array(label, "label")
        _same_shape(pred, label, "ConfusionMatrix.update(pred, label)")
        pred = pred.reshape(-1).astype(np.int64, copy=False)
        label = label.reshape(-1).astype(np.int64, copy=False)

        if pred.size == 0:
            return self
        # min/max first: the full masks are only built when something is out of range
        if pred.min() < 0 or pred.max() >= n:
            bad_pred = (pred < 0) | (pred >= n)
            raise ValueError(
                f"{int(bad_pred.sum())} predictions outside [0, {n}) (values {_preview(pred[bad_pred])}); "
                f"is num_classes={n} right?"
            )
        index = label * n + pred
        if label.min() < 0 or label.max() >= n:
            skip = (label < 0) | (label >= n)
            invalid = skip if self.ignore_index is None else skip & (label != self.ignore_index)
            if invalid.any():
                count = int(invalid.sum())
                msg = (
                    f"{count} label pixels outside [0, {n}) and not ignore_index={self.ignore_index} "
                    f"(values {_preview(label[invalid])})"
                )
                if self.invalid_label == "error":
                    raise ValueError(msg + "; pass invalid_label='ignore' to skip them")
                warnings.warn(msg + "; skipped", stacklevel=2)
                self.invalid_label_count += count
            index[skip] = n * n  # one extra bin collects every skipped pixel, dropped below
        counts = np.bincount(index, minlength=n * n + 1)[: n * n]
        self.matrix += counts.reshape(n, n)
        return self

    def reset(self) -> ConfusionMatrix:
        self.matrix[...] = 0
        self.invalid_label_count = 0
        return self

    def _check_compatible(self, other: ConfusionMatrix) -> None:
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"cannot merge a ConfusionMatrix with {type(other).__name__}")
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"cannot merge confusion matrices with (num_classes, ignore_index) "
                f"{(self.num_classes, self.ignore_index)} and {(other.num_classes, other.ignore_index)}"
            )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix in place (e.g. the one of another process); returns self."""
        self._check_compatible(other)
        self.matrix += other.matrix
        self.invalid_label_count += other.invalid_label_count
        return self

    def copy(self) -> ConfusionMatrix:
        out = ConfusionMatrix(self.num_classes, self.ignore_index, self.invalid_label)
        out.merge(self)
        return out

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.copy().merge(other)

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    @classmethod
    def from_matrix(cls, matrix: Any, ignore_index: int | None = 255) -> ConfusionMatrix:
        """Rebuild from a (n, n) count matrix, e.g. after an all-reduce across processes."""
        mat = np.asarray(matrix)
        if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
            raise ValueError(f"from_matrix expects a square (n, n) matrix, got shape {mat.shape}")
        if mat.dtype.kind == "f":
            if not np.all(mat == np.round(mat)):
                raise ValueError("from_matrix: the matrix holds non-integer counts")
        elif mat.dtype.kind not in "iu":
            raise TypeError(f"from_matrix: expected integer counts, got dtype {mat.dtype}")
        if (mat < 0).any():
            raise ValueError("from_matrix: the matrix holds negative counts")
        out = cls(mat.shape[0], ignore_index)
        out.matrix += mat.astype(np.int64)
        return out

    # ---- areas ----
    @property
    def total(self) -> int:
        """Number of counted (non-ignored) pixels."""
        return int(self.matrix.sum())

    def intersection(self) -> np.ndarray:
        return np.diag(self.matrix).copy()

    def label_area(self) -> np.ndarray:
        return self.matrix.sum(axis=1)

    def pred_area(self) -> np.ndarray:
        return self.matrix.sum(axis=0)

    def union(self) -> np.ndarray:
        return self.label_area() + self.pred_area() - self.intersection()

    # ---- scores ----
    def iou(self) -> np.ndarray:
        """Per-class IoU = inter / union, 0 for a class with union 0."""
        return _ratio(self.intersection(), self.union())

    def miou(self, mode: str = "all") -> float:
        """Mean IoU; mode "all" (official: absent classes count 0) or "present" (union > 0 only)."""
        iou = self.iou()
        if mode == "all":
            return float(iou.mean())
        if mode == "present":
            present = self.union() > 0
            return float(iou[present].mean()) if present.any() else float("nan")
        raise ValueError(f"miou mode must be 'all' or 'present', got {mode!r}")

    def pixel_accuracy(self) -> float:
        """Correct / counted pixels (NaN when nothing was counted)."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """Per-class accuracy = recall = correct / label pixels of the class (0 if none)."""
        return _ratio(self.intersection(), self.label_area())

    def class_precision(self) -> np.ndarray:
        """Per-class precision = correct / predicted pixels of the class (0 if none).

        (This is what PaddleSeg's ``metrics.accuracy`` calls the class accuracy.)"""
        return _ratio(self.intersection(), self.pred_area())

    def mean_class_accuracy(self, mode: str = "present") -> float:
        """Mean of :meth:`class_accuracy`; "present" (default, FCN-style) over classes with label
        pixels, "all" over every class (absent ones count 0)."""
        acc = self.class_accuracy()
        if mode == "all":
            return float(acc.mean())
        if mode == "present":
            present = self.label_area() > 0
            return float(acc[present].mean()) if present.any() else float("nan")
        raise ValueError(f"mean_class_accuracy mode must be 'all' or 'present', got {mode!r}")

    def kappa(self) -> float:
        """Cohen's kappa (po - pe) / (1 - pe); NaN when undefined (no pixels, or pe == 1)."""
        total = float(self.total)
        if total == 0:
            return float("nan")
        po = np.trace(self.matrix) / total
        pe = float(np.sum(self.label_area().astype(np.float64) * self.pred_area())) / (total * total)
        return float((po - pe) / (1.0 - pe)) if pe != 1.0 else float("nan")

    def summary(
        self, class_names: Sequence[str] | None = None, fg_start: int | None = None
    ) -> Dict[str, Any]:
        """A JSON-ready dict: overall scores and a per-class table.

        Args:
            class_names: one name per class (default: the class indices as strings).
            fg_start: if given, also report ``fg_miou``, the mean IoU of classes fg_start..n-1
                ("all" convention) — FactSeg's 15-class foreground mean is ``fg_start=1``.
        """
        n = self.num_classes
        names = _class_names(class_names, n)
        if self.total == 0:
            warnings.warn("ConfusionMatrix.summary: no pixels were counted", stacklevel=2)
        iou, acc, prec = self.iou(), self.class_accuracy(), self.class_precision()
        label_area, pred_area, union = self.label_area(), self.pred_area(), self.union()
        out: Dict[str, Any] = {
            "num_classes": n,
            "ignore_index": self.ignore_index,
            "pixels": self.total,
            "miou": self.miou("all"),
            "miou_present": self.miou("present"),
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_class_accuracy": self.mean_class_accuracy("present"),
            "kappa": self.kappa(),
        }
        if fg_start is not None:
            if not 0 <= fg_start < n:
                raise ValueError(f"fg_start must be in [0, {n}), got {fg_start}")
            out["fg_start"] = int(fg_start)
            out["fg_miou"] = float(iou[fg_start:].mean())
        if self.invalid_label_count:
            out["invalid_label_pixels_skipped"] = self.invalid_label_count
        out["per_class"] = [
            {
                "index": i,
                "name": names[i],
                "iou": float(iou[i]),
                "accuracy": float(acc[i]),
                "precision": float(prec[i]),
                "label_pixels": int(label_area[i]),
                "pred_pixels": int(pred_area[i]),
                "present": bool(union[i] > 0),
            }
            for i in range(n)
        ]
        return out


def _class_names(class_names: Sequence[str] | None, n: int) -> List[str]:
    if class_names is None:
        return [str(i) for i in range(n)]
    names = [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"got {len(names)} class names for {n} classes")
    return names


def segmentation_scalars(summary: Mapping[str, Any]) -> Dict[str, float]:
    """The scalars of a ``ConfusionMatrix.summary`` that the trainer logs (VisualDL) and ranks on."""
    out = {"miou": summary["miou"], "pixel_accuracy": summary["pixel_accuracy"],
           "miou_present": summary["miou_present"]}
    if "fg_miou" in summary:
        out["fg_miou"] = summary["fg_miou"]
    return out


def format_iou_table(summary: Dict[str, Any], class_names: Sequence[str] | None = None) -> str:
    """Plain-text table of a :meth:`ConfusionMatrix.summary` for logs."""
    rows = summary["per_class"]
    names = _class_names(class_names, len(rows)) if class_names is not None else [r["name"] for r in rows]
    width = max([len("class")] + [len(s) for s in names])
    header = f"{'#':>3}  {'class':<{width}}  {'IoU':>7}  {'Acc':>7}  {'Prec':>7}  {'label px':>12}"
    lines = [header, "-" * len(header)]
    for row, name in zip(rows, names):
        flag = "" if row["present"] else "  (absent)"
        lines.append(
            f"{row['index']:>3}  {name:<{width}}  {row['iou']:7.4f}  {row['accuracy']:7.4f}  "
            f"{row['precision']:7.4f}  {row['label_pixels']:>12d}{flag}"
        )
    lines.append("-" * len(header))
    n = summary["num_classes"]
    lines.append(
        f"mIoU {summary['miou']:.4f} (all {n} classes)   mIoU {summary['miou_present']:.4f} (present)   "
        f"pixAcc {summary['pixel_accuracy']:.4f}   mAcc {summary['mean_class_accuracy']:.4f}   "
        f"kappa {summary['kappa']:.4f}   pixels {summary['pixels']}"
    )
    if "fg_miou" in summary:
        lines.append(f"foreground mIoU {summary['fg_miou']:.4f} (classes {summary['fg_start']}..{n - 1})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Change detection
# --------------------------------------------------------------------------------------------------


def binary_scores(tp: int, fp: int, fn: int, tn: int) -> Dict[str, Any]:
    """Precision, recall, F1, overall accuracy and IoU of the changed class from the four counts.

    Zero-division convention: a ratio whose denominator is 0 is 0.0 (sklearn's zero_division=0),
    e.g. precision = 0 when nothing is predicted changed. The official LSNet script divides anyway
    and would print NaN. Otherwise the formulas are the LSNet script's, in the same order:
    P = tp/(tp+fp), R = tp/(tp+fn), F1 = 2*P*R/(R+P), OA = (tp+tn)/(tp+tn+fp+fn), IoU = tp/(tp+fp+fn).
    """
    counts = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    for key, value in counts.items():
        if int(value) != value or value < 0:
            raise ValueError(f"binary_scores: {key} must be a non-negative integer count, got {value!r}")
    tp, fp, fn, tn = (int(v) for v in (tp, fp, fn, tn))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (recall + precision) if recall + precision else 0.0
    total = tp + tn + fp + fn
    oa = (tp + tn) / total if total else 0.0
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "oa": oa,
        "iou": iou,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


class BinaryConfusion:
    """Dataset-level tp/fp/fn/tn of a 0/1 change prediction against 0/1 labels.

    Args:
        ignore_index (int or None): label value that is skipped. Default 255.

    Labels other than 0, 1 and ``ignore_index`` raise (binarise raw 0/255 labels first).
    """

    def __init__(self, ignore_index: int | None = 255):
        self._cm = ConfusionMatrix(2, ignore_index=ignore_index)

    @property
    def ignore_index(self) -> int | None:
        return self._cm.ignore_index

    def update(self, pred: Any, label: Any) -> BinaryConfusion:
        """``pred``: 0/1 (or bool) change mask, same shape as ``label``."""
        self._cm.update(pred, label)
        return self

    def update_from_logits(self, logits: Any, label: Any, axis: int = 1) -> BinaryConfusion:
        """Prediction = argmax over the 2-class ``axis`` (ties -> class 0, like torch.max/argmax)."""
        logits = np.asarray(logits)
        if logits.ndim == 0 or logits.shape[axis] != 2:
            raise ValueError(f"update_from_logits expects 2 classes on axis {axis}, got shape {logits.shape}")
        return self.update(np.argmax(logits, axis=axis), label)

    def update_from_scores(self, score: Any, label: Any, threshold: float) -> BinaryConfusion:
        """Prediction = ``score >= threshold`` (the same rule as :class:`ThresholdSweep`)."""
        score = np.asarray(score, dtype=np.float64)
        if np.isnan(score).any():
            raise ValueError(f"update_from_scores: {int(np.isnan(score).sum())} NaN scores")
        return self.update(score >= threshold, label)

    def reset(self) -> BinaryConfusion:
        self._cm.reset()
        return self

    def merge(self, other: BinaryConfusion) -> BinaryConfusion:
        if not isinstance(other, BinaryConfusion):
            raise TypeError(f"cannot merge a BinaryConfusion with {type(other).__name__}")
        self._cm.merge(other._cm)
        return self

    def __add__(self, other: BinaryConfusion) -> BinaryConfusion:
        out = BinaryConfusion(self.ignore_index)
        return out.merge(self).merge(other)

    def __iadd__(self, other: BinaryConfusion) -> BinaryConfusion:
        return self.merge(other)

    def counts(self) -> Dict[str, int]:
        m = self._cm.matrix
        return {"tp": int(m[1, 1]), "fp": int(m[0, 1]), "fn": int(m[1, 0]), "tn": int(m[0, 0])}

    def result(self) -> Dict[str, Any]:
        c = self.counts()
        return binary_scores(c["tp"], c["fp"], c["fn"], c["tn"])


def dasnet_official_thresholds() -> np.ndarray:
    """The official DASNet sweep: 256 thresholds t/255 for t = 0..255, i.e. [0, 1].

    A known bug kept for parity: the L2 distance between unit embeddings lies in [0, 2], so every
    pixel with d >= 1 is "changed" at EVERY threshold, and the best threshold can never exceed 1
    (in practice it is always 1). Use :func:`dasnet_v2_thresholds` for a sweep covering [0, 2].
    """
    return np.arange(256, dtype=np.float64) / 255.0


def dasnet_v2_thresholds() -> np.ndarray:
    """DASNet-V2's sweep: ``np.linspace(0, 2.2, 96)`` (covers the whole distance range [0, 2])."""
    return np.linspace(0.0, 2.2, 96)


class ThresholdSweep:
    """Per-threshold change-detection counts of a score map, accumulated over a whole split.

    A pixel is predicted changed at threshold t iff its score d >= t. For each threshold:
    FN = positives with d < t, FP = negatives with d >= t (the DASNet / DASNet-V2 definition).
    Each update places every pixel's score among the sorted thresholds with ``np.searchsorted`` and
    adds two histograms (positives / negatives) of those positions; the counts at every threshold
    are cumulative sums of the histograms, so the cost does not grow with a loop over thresholds
    and any batch size gives the same counts.

    Args:
        thresholds: 1-D, finite, strictly increasing (e.g. :func:`dasnet_v2_thresholds`).
        ignore_index (int or None): label value that is skipped (official DASNet: 255; DASNet-V2
            skips nothing). Default 255.
        other_labels (str): labels other than 0, 1, ``ignore_index``: "error" (default) raises;
            "negative" counts them as unchanged like the official ``gt == 1`` test, with a warning
            and the running total in ``other_label_count``.
    """

    def __init__(self, thresholds: Any, ignore_index: int | None = 255, other_labels: str = "error"):
        thr = np.asarray(thresholds, dtype=np.float64)
        if thr.ndim != 1 or thr.size == 0:
            raise ValueError(f"thresholds must be a non-empty 1-D array, got shape {thr.shape}")
        if not np.isfinite(thr).all():
            raise ValueError("thresholds must be finite")
        if thr.size > 1 and not (np.diff(thr) > 0).all():
            raise ValueError("thresholds must be strictly increasing")
        if other_labels not in ("error", "negative"):
            raise ValueError(f"other_labels must be 'error' or 'negative', got {other_labels!r}")
        self.thresholds = thr
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.other_labels = other_labels
        # bin j = pixels whose score is >= exactly j thresholds (j = 0..K)
        self._pos_hist = np.zeros(thr.size + 1, dtype=np.int64)
        self._neg_hist = np.zeros(thr.size + 1, dtype=np.int64)
        self.other_label_count = 0

    def update(self, score: Any, label: Any) -> ThresholdSweep:
        """Add a batch of any shape: float ``score`` (d) and 0/1 ``label`` of the same shape."""
        score = np.asarray(score)
        if score.dtype.kind not in "fiu":
            raise TypeError(f"score must be numeric, got dtype {score.dtype}")
        label = _int_array(label, "label")
        _same_shape(score, label, "ThresholdSweep.update(score, label)")
        score = score.reshape(-1).astype(np.float64, copy=False)
        label = label.reshape(-1).astype(np.int64, copy=False)
        nan = np.isnan(score)
        if nan.any():
            raise ValueError(f"ThresholdSweep.update: {int(nan.sum())} NaN scores")

        valid = np.ones_like(label, dtype=bool) if self.ignore_index is None else label != self.ignore_index
        pos = valid & (label == 1)
        neg = valid & (label == 0)
        other = valid & ~pos & ~neg
        if other.any():
            count = int(other.sum())
            msg = (
                f"{count} label pixels are not 0, 1 or ignore_index={self.ignore_index} "
                f"(values {_preview(label[other])})"
            )
            if self.other_labels == "error":
                raise ValueError(msg + "; binarise the labels, or pass other_labels='negative'")
            warnings.warn(msg + "; counted as unchanged", stacklevel=2)
            self.other_label_count += count
            neg |= other

        n_bins = self.thresholds.size + 1
        # side="right": a score equal to a threshold counts as >= it (changed).
        self._pos_hist += np.bincount(
            np.searchsorted(self.thresholds, score[pos], side="right"), minlength=n_bins
        )
        self._neg_hist += np.bincount(
            np.searchsorted(self.thresholds, score[neg], side="right"), minlength=n_bins
        )
        return self

    def reset(self) -> ThresholdSweep:
        self._pos_hist[:] = 0
        self._neg_hist[:] = 0
        self.other_label_count = 0
        return self

    def merge(self, other: ThresholdSweep) -> ThresholdSweep:
        if not isinstance(other, ThresholdSweep):
            raise TypeError(f"cannot merge a ThresholdSweep with {type(other).__name__}")
        if not np.array_equal(other.thresholds, self.thresholds) or other.ignore_index != self.ignore_index:
            raise ValueError("cannot merge ThresholdSweeps with different thresholds or ignore_index")
        self._pos_hist += other._pos_hist
        self._neg_hist += other._neg_hist
        self.other_label_count += other.other_label_count
        return self

    def __add__(self, other: ThresholdSweep) -> ThresholdSweep:
        out = ThresholdSweep(self.thresholds, self.ignore_index, self.other_labels)
        return out.merge(self).merge(other)

    def __iadd__(self, other: ThresholdSweep) -> ThresholdSweep:
        return self.merge(other)

    def counts(self) -> Dict[str, Any]:
        """pos_num, neg_num and the per-threshold tp, fp, fn, tn arrays (all thresholds)."""
        k = self.thresholds.size
        pos_num = int(self._pos_hist.sum())
        neg_num = int(self._neg_hist.sum())
        fn = np.cumsum(self._pos_hist)[:k]  # positives below t_k
        tn = np.cumsum(self._neg_hist)[:k]  # negatives below t_k
        return {
            "pos_num": pos_num,
            "neg_num": neg_num,
            "tp": pos_num - fn,
            "fp": neg_num - tn,
            "fn": fn,
            "tn": tn,
        }

    def result(self) -> Dict[str, Any]:
        """Max-F over the thresholds, computed as the official DASNet / DASNet-V2 code does.

        recall = TP / P, precision = TP / (TP + FP + 1e-10), F = 2PR / (P + R + 1e-10); thresholds
        where precision = recall = 0 (exactly those with TP = 0, always the highest ones) are dropped
        from ``precision`` / ``recall`` / ``f`` / ``kept_thresholds``; max_f = max(f) at the first
        (lowest) best threshold. With no positive pixel at all, recall is set to 0 (the official code
        divides by zero), every threshold is dropped and max_f = 0 with best_threshold None.

        PR-AUC rule: the trapezoidal rule in recall over the kept (recall, precision) points taken
        from the highest to the lowest threshold (recall never decreases along that path; points of
        equal recall add nothing), without added end points — the area under the curve over the
        recall range the thresholds reach. With the official [0, 1] thresholds the low-recall end is
        never reached (pixels with d >= 1 stay changed), so that area is not comparable to a
        full-range sweep.

        Returns a dict (arrays as numpy): thresholds, tp, fp, fn, tn (all thresholds), pos_num,
        neg_num, kept (bool mask), kept_thresholds, precision, recall, f (kept thresholds), max_f,
        best_threshold, best_index (into ``thresholds``), best_precision, best_recall, best_oa,
        best_iou, best_tp, best_fp, best_fn, best_tn, pr_auc, pr_auc_rule.
        """
        c = self.counts()
        tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
        pos_num, neg_num = c["pos_num"], c["neg_num"]
        if pos_num > 0:
            recall = tp / float(pos_num)
        else:
            warnings.warn("ThresholdSweep.result: no positive (changed) pixel was counted", stacklevel=2)
            recall = np.zeros(tp.shape, dtype=np.float64)
        precision = tp / (tp + fp + _SWEEP_EPS)
        kept = ~((recall == 0) & (precision == 0))
        recall_k, precision_k = recall[kept], precision[kept]
        f = 2.0 * (precision_k * recall_k) / (precision_k + recall_k + _SWEEP_EPS)

        out: Dict[str, Any] = {
            "thresholds": self.thresholds.copy(),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "pos_num": pos_num,
            "neg_num": neg_num,
            "kept": kept,
            "kept_thresholds": self.thresholds[kept],
            "precision": precision_k,
            "recall": recall_k,
            "f": f,
        }
        if f.size == 0:
            out.update(
                max_f=0.0,
                best_threshold=None,
                best_index=None,
                best_precision=0.0,
                best_recall=0.0,
                best_oa=float("nan"),
                best_iou=0.0,
                best_tp=None,
                best_fp=None,
                best_fn=None,
                best_tn=None,
            )
        else:
            i = int(np.argmax(f))
            best = int(np.flatnonzero(kept)[i])
            scores = binary_scores(int(tp[best]), int(fp[best]), int(fn[best]), int(tn[best]))
            out.update(
                max_f=float(f[i]),
                best_threshold=float(self.thresholds[best]),
                best_index=best,
                best_precision=float(precision_k[i]),
                best_recall=float(recall_k[i]),
                best_oa=scores["oa"],
                best_iou=scores["iou"],
                best_tp=scores["tp"],
                best_fp=scores["fp"],
                best_fn=scores["fn"],
                best_tn=scores["tn"],
            )
        out["pr_auc"] = _trapezoid_pr_auc(recall_k, precision_k)
        out["pr_auc_rule"] = (
            "trapezoid in recall over kept points from highest to lowest threshold, no end points"
        )
        return out


def _trapezoid_pr_auc(recall: np.ndarray, precision: np.ndarray) -> float:
    """Trapezoids along the curve from the highest to the lowest threshold (recall non-decreasing)."""
    if recall.size < 2:
        return 0.0
    r, p = recall[::-1], precision[::-1]
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2.0))


def plot_pr_curve(result: Dict[str, Any], path: Any, title: str | None = None) -> str:
    """Save the P-R curve of a :meth:`ThresholdSweep.result` (image format from the extension).

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch); written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    recall = np.asarray(result["recall"], dtype=np.float64)
    precision = np.asarray(result["precision"], dtype=np.float64)
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(recall, precision, linewidth=2, color="tab:red")
    if result.get("best_threshold") is not None:
        ax.plot(
            [result["best_recall"]],
            [result["best_precision"]],
            "o",
            color="black",
            label=f"max F {result['max_f']:.4f} at t = {result['best_threshold']:.4f}",
        )
        ax.legend(loc="lower left")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.grid(True, alpha=0.3)
    ax.set_title(
        title if title is not None else f"P-R curve (PR-AUC {result.get('pr_auc', float('nan')):.4f})"
    )
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    return str(atomic_save(path, lambda tmp: fig.savefig(tmp, format=ext)))


def save_metric_json(result: Dict[str, Any], path: Any) -> str:
    """Write a metric dict as JSON atomically (numpy arrays as lists, NaN as null)."""
    return str(atomic_write_json(path, result))
