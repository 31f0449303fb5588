"""Metric references in PyTorch, written the way the official codes compute their numbers.

Independent of ``rsrepro/metrics.py`` on purpose: the alignment ``check_metric`` step feeds both the
same predictions and compares. Nothing here is registered (this module only holds functions).

DANet (junfu1115/DANet, ``encoding/utils/metrics.py``, 2020 torch version of the 2019 numpy one):
    labels use -1 for ignored pixels (the official dataset maps 255 to -1); predictions and labels
    are shifted by +1 so that ignored pixels become 0, predictions are masked by ``target > 0``, and
    areas are ``torch.histc`` with ``bins = nclass`` over ``[1, nclass]``.
    pixAcc = correct / (eps + labeled), IoU = inter / (eps + union), mIoU = IoU.mean() over ALL
    classes, eps = np.spacing(1). Deviation: histc runs in float64 instead of float32, so counts stay
    exact beyond 2**24 pixels per class and batch.

DASNet / DASNet-V2 (lehaifeng/DASNet, silence-tang/DASNet-V2, ``utils/metric.py``, KITTI-road
style): per image, for each threshold t, FN = positives with d < t and FP = negatives with d >= t,
summed over the split; then recall = TP/P, precision = TP/(TP+FP+1e-10), thresholds with P = R = 0
dropped, F = 2PR/(P+R+1e-10), the best F and its threshold. The official code bins with
``np.histogram``; here it is the plain loop over thresholds. Comparisons run in float64 (numpy
promotes the float32 map to float64 against the float64 thresholds; torch would instead round the
threshold to float32).

LSNet (qaz670756/LSNet ``eval.py``): one confusion (tn, fp, fn, tp) summed over the test batches,
P = tp/(tp+fp), R = tp/(tp+fn), F1 = 2PR/(R+P), OA = (tp+tn)/all. The official script uses
sklearn's confusion_matrix, which crashes (unpacking) on a batch where label and prediction hold a
single class; a bincount of 4 cells has no such problem.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import torch

_EPS = np.spacing(1)


# ---- DANet ----


def pred_pix_accuracy(predict: torch.Tensor, target: torch.Tensor) -> Tuple[int, int]:
    """(pixel_correct, pixel_labeled) of integer predictions; target -1 = ignored."""
    predict = predict.long() + 1
    target = target.long() + 1
    pixel_labeled = int((target > 0).sum())
    pixel_correct = int(((predict == target) & (target > 0)).sum())
    assert pixel_correct <= pixel_labeled, "Correct area should be smaller than Labeled"
    return pixel_correct, pixel_labeled


def pred_intersection_union(
    predict: torch.Tensor, target: torch.Tensor, nclass: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(area_inter, area_union) per class (float64) of integer predictions; target -1 = ignored."""
    mini, maxi, nbins = 1, nclass, nclass
    predict = predict.double() + 1
    target = target.double() + 1
    predict = predict * (target > 0).double()
    intersection = predict * (predict == target).double()
    area_inter = torch.histc(intersection.cpu(), bins=nbins, min=mini, max=maxi)
    area_pred = torch.histc(predict.cpu(), bins=nbins, min=mini, max=maxi)
    area_lab = torch.histc(target.cpu(), bins=nbins, min=mini, max=maxi)
    area_union = area_pred + area_lab - area_inter
    assert (area_inter <= area_union).all(), "Intersection area should be smaller than Union area"
    return area_inter, area_union


def batch_pix_accuracy(output: torch.Tensor, target: torch.Tensor) -> Tuple[int, int]:
    """As the official: logits (B, C, H, W) -> argmax over C, then :func:`pred_pix_accuracy`."""
    _, predict = torch.max(output, 1)
    return pred_pix_accuracy(predict, target)


def batch_intersection_union(
    output: torch.Tensor, target: torch.Tensor, nclass: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """As the official: logits (B, C, H, W) -> argmax over C, then :func:`pred_intersection_union`."""
    _, predict = torch.max(output, 1)
    return pred_intersection_union(predict, target, nclass)


class SegmentationMetric:
    """The official accumulator: pixAcc and mIoU over everything seen since ``reset``."""

    def __init__(self, nclass: int) -> None:
        self.nclass = nclass
        self.reset()

    def reset(self) -> None:
        self.total_inter = torch.zeros(self.nclass, dtype=torch.float64)
        self.total_union = torch.zeros(self.nclass, dtype=torch.float64)
        self.total_correct = 0
        self.total_label = 0

    def update_pred(self, predict: torch.Tensor, target: torch.Tensor) -> None:
        correct, labeled = pred_pix_accuracy(predict, target)
        inter, union = pred_intersection_union(predict, target, self.nclass)
        self.total_correct += correct
        self.total_label += labeled
        self.total_inter += inter
        self.total_union += union

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        _, predict = torch.max(output, 1)
        self.update_pred(predict, target)

    def iou(self) -> torch.Tensor:
        return 1.0 * self.total_inter / (_EPS + self.total_union)

    def get(self) -> Tuple[float, float]:
        pix_acc = 1.0 * self.total_correct / (_EPS + self.total_label)
        return pix_acc, float(self.iou().mean())


# ---- DASNet / DASNet-V2 ----


def dasnet_eval_image(
    gt: torch.Tensor,
    prob: torch.Tensor,
    thresholds: Sequence[float],
    cl_index: int = 1,
    ignore_index: int | None = 255,
) -> Tuple[np.ndarray, np.ndarray, int, int]:
    """FN, FP per threshold and posNum, negNum of ONE image (the official runs batch size 1).

    ``ignore_index=255`` as official DASNet (``gt != 255``); None as DASNet-V2 (no valid mask).
    Every other label than ``cl_index`` counts as negative, as in the official ``gt == cl_index``.
    """
    assert gt.dim() == 2 and prob.dim() == 2, "Wrong size of input prob map"
    valid = torch.ones_like(gt, dtype=torch.bool) if ignore_index is None else gt != ignore_index
    pos = (gt == cl_index) & valid
    neg = (gt != cl_index) & valid
    prob = prob.double()
    fn_list, fp_list = [], []
    for t in thresholds:
        changed = prob >= float(t)
        fn_list.append(int((pos & ~changed).sum()))
        fp_list.append(int((neg & changed).sum()))
    return (
        np.array(fn_list, dtype=np.int64),
        np.array(fp_list, dtype=np.int64),
        int(pos.sum()),
        int(neg.sum()),
    )


def dasnet_maximize_f(
    total_pos: int, total_neg: int, total_fn: np.ndarray, total_fp: np.ndarray, thresholds: Sequence[float]
) -> Dict[str, object]:
    """The official ``pxEval_maximizeFMeasure`` arithmetic in float64 torch."""
    total_fn = torch.as_tensor(np.asarray(total_fn), dtype=torch.float64)
    total_fp = torch.as_tensor(np.asarray(total_fp), dtype=torch.float64)
    thresh = torch.as_tensor(np.asarray(thresholds, dtype=np.float64))
    total_tp = total_pos - total_fn
    total_tn = total_neg - total_fp
    assert ((total_tp >= 0) & (total_tn >= 0)).all(), "Detected invalid elements in eval"
    recall = total_tp / float(total_pos)
    precision = total_tp / (total_tp + total_fp + 1e-10)
    selector_invalid = (recall == 0) & (precision == 0)
    recall = recall[~selector_invalid]
    precision = precision[~selector_invalid]
    beta = 1.0
    betasq = beta**2
    f = (1 + betasq) * (precision * recall) / ((betasq * precision) + recall + 1e-10)
    index = int(torch.argmax(f))
    return {
        "MaxF": float(f[index]),
        "BestThresh": float(thresh[index]),
        "precision": precision.numpy(),
        "recall": recall.numpy(),
        "F": f.numpy(),
        "totalPosNum": total_pos,
        "totalNegNum": total_neg,
    }


def dasnet_validate(
    scores: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    thresholds: Sequence[float],
    ignore_index: int | None = 255,
) -> Dict[str, object]:
    """The official validation loop: one (H, W) score map and label at a time, counts summed."""
    total_fn = np.zeros(len(thresholds), dtype=np.int64)
    total_fp = np.zeros(len(thresholds), dtype=np.int64)
    total_pos = total_neg = 0
    for prob, gt in zip(scores, labels):
        fn, fp, pos, neg = dasnet_eval_image(gt, prob, thresholds, ignore_index=ignore_index)
        total_fn += fn
        total_fp += fp
        total_pos += pos
        total_neg += neg
    out = dasnet_maximize_f(total_pos, total_neg, total_fn, total_fp, thresholds)
    out.update(total_fn=total_fn, total_fp=total_fp)
    return out


# ---- LSNet ----


def lsnet_confusion(pred: torch.Tensor, label: torch.Tensor) -> Tuple[int, int, int, int]:
    """(tn, fp, fn, tp) of a 0/1 prediction, ordered like sklearn's ``confusion_matrix(...).ravel()``."""
    label = label.long().flatten()
    pred = pred.long().flatten()
    if not bool(((label == 0) | (label == 1)).all() and ((pred == 0) | (pred == 1)).all()):
        raise ValueError("lsnet_confusion expects 0/1 labels and predictions")
    tn, fp, fn, tp = torch.bincount(label * 2 + pred, minlength=4).tolist()
    return tn, fp, fn, tp


def lsnet_scores(tn: int, fp: int, fn: int, tp: int) -> Dict[str, float]:
    """The test script's P, R, F1, OA (numpy int64 counts as sklearn gives them; 0/0 -> NaN)."""
    tn, fp, fn, tp = (np.int64(v) for v in (tn, fp, fn, tp))
    with np.errstate(divide="ignore", invalid="ignore"):
        P = tp / (tp + fp)
        R = tp / (tp + fn)
        F1 = 2 * P * R / (R + P)
        OA = (tp + tn) / (tp + tn + fp + fn)
    return {"precision": float(P), "recall": float(R), "f1": float(F1), "oa": float(OA)}
