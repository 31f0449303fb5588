"""Step 3: the same predictions give the same metric.

Our metric code (``rsrepro/metrics.py``, what tools/eval.py and training use) is fed the same
predictions as the official-style torch references (``torch_ref/metrics.py``) and, for
segmentation, PaddleSeg's ``metrics.mean_iou``. Segmentation: per-class intersection/union
areas, IoU, mIoU, pixel accuracy. Change detection: per-threshold FN/FP, precision, recall, F,
max-F and best threshold of the dataset-level sweep, and argmax P/R/F1/OA. Bar: identical up to
floating-point summation order (|diff| <= 1e-12; counts must be exactly equal).

    python -m alignment.check_metric --model danet_r50
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Tuple

import numpy as np

from .cases import AlignCase
from .harness import Row, StepResult, result_stem, run_step, save_reprod_pair

METRIC_ABS = 1e-12


def _rows(torch_info: Dict[str, np.ndarray], ours: Dict[str, np.ndarray], prefix: str) -> List[Row]:
    rows = []
    for name, ref in torch_info.items():
        ref64 = np.asarray(ref, np.float64)
        test64 = np.asarray(ours[name], np.float64)
        diff = np.abs(ref64 - test64) if ref64.shape == test64.shape else np.array([np.inf])
        rows.append(Row(f"{prefix}.{name}", float(diff.max()), float(diff.mean()),
                        float(np.abs(ref64).max()), float(np.abs(ref64).mean()),
                        f"|diff|<={METRIC_ABS:g}", bool(diff.max() <= METRIC_ABS)))
    return rows


def segmentation_predictions(case: AlignCase, seed: int, batches: int = 4
                             ) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Blocky predictions that agree with the labels on ~70 % of the pixels, 10 % ignored."""
    rng = np.random.RandomState(seed)
    n = case.num_classes
    out = []
    for _ in range(batches):
        label = np.kron(rng.randint(0, n, size=(2, 8, 8)), np.ones((1, 8, 8), dtype=np.int64))
        pred = np.where(rng.rand(*label.shape) < 0.7, label, rng.randint(0, n, size=label.shape))
        label = np.where(rng.rand(*label.shape) < 0.1, 255, label)
        out.append((pred.astype(np.int64), label.astype(np.int64)))
    return out


def segmentation_values(case: AlignCase, seed: int):
    import torch
    from paddleseg.utils import metrics as paddleseg_metrics

    from rsrepro.metrics import ConfusionMatrix
    from torch_ref.metrics import SegmentationMetric

    ours = ConfusionMatrix(case.num_classes, ignore_index=255)
    ref = SegmentationMetric(case.num_classes)
    for pred, label in segmentation_predictions(case, seed):
        ours.update(pred, label)
        # The official dataset maps ignore 255 to -1.
        ref.update_pred(torch.from_numpy(pred), torch.from_numpy(np.where(label == 255, -1, label)))
    pix_acc, miou = ref.get()
    torch_values = {"area_inter": ref.total_inter.numpy(), "area_union": ref.total_union.numpy(),
                    "iou": ref.iou().numpy(), "miou": np.array(miou), "pixel_accuracy": np.array(pix_acc)}
    paddle_values = {"area_inter": ours.intersection(), "area_union": ours.union(), "iou": ours.iou(),
                     "miou": np.array(ours.miou("all")), "pixel_accuracy": np.array(ours.pixel_accuracy())}
    # PaddleSeg's mean_iou on our areas (its calculate_area is broken on Paddle 3.x).
    import paddle

    _, seg_miou = paddleseg_metrics.mean_iou(
        paddle.to_tensor(ours.intersection()), paddle.to_tensor(ours.pred_area()),
        paddle.to_tensor(ours.label_area()))
    extra = {"paddleseg_miou_vs_ours": (np.array(seg_miou), np.array(ours.miou("all")))}
    return torch_values, paddle_values, extra


def change_detection_values(case: AlignCase, seed: int):
    import torch

    from rsrepro.metrics import BinaryConfusion, ThresholdSweep, dasnet_v2_thresholds
    from torch_ref.metrics import dasnet_validate, lsnet_confusion, lsnet_scores

    rng = np.random.RandomState(seed)
    thresholds = dasnet_v2_thresholds()
    sweep = ThresholdSweep(thresholds, ignore_index=None)
    binary = BinaryConfusion(ignore_index=None)
    scores, labels = [], []
    counts = np.zeros(4, dtype=np.int64)
    for _ in range(6):
        label = (rng.rand(32, 32) < 0.2).astype(np.int64)
        score = np.clip(label * 1.2 + rng.randn(32, 32) * 0.5 + 0.4, 0, 2).astype(np.float32)
        sweep.update(score[None], label[None])
        binary.update((score >= 1.0).astype(np.int64), label)
        scores.append(torch.from_numpy(score))
        labels.append(torch.from_numpy(label))
        counts += np.array(lsnet_confusion(torch.from_numpy((score >= 1.0).astype(np.int64)),
                                           torch.from_numpy(label)))
    ref = dasnet_validate(scores, labels, thresholds, ignore_index=None)
    ours = sweep.result()
    lsnet_ref = lsnet_scores(*counts)
    ours_binary = binary.result()
    torch_values = {"fn": ref["total_fn"], "fp": ref["total_fp"], "precision": ref["precision"],
                    "recall": ref["recall"], "f": ref["F"], "max_f": np.array(ref["MaxF"]),
                    "best_threshold": np.array(ref["BestThresh"])}
    torch_values.update({f"argmax_{k}": np.array(v) for k, v in lsnet_ref.items()})
    paddle_values = {"fn": ours["fn"], "fp": ours["fp"], "precision": ours["precision"],
                     "recall": ours["recall"], "f": ours["f"], "max_f": np.array(ours["max_f"]),
                     "best_threshold": np.array(ours["best_threshold"])}
    paddle_values.update({f"argmax_{k}": np.array(ours_binary[k]) for k in lsnet_ref})
    return torch_values, paddle_values, {}


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    values = segmentation_values if case.task == "segmentation" else change_detection_values
    torch_values, ours, extra = values(case, args.seed)
    stem = result_stem(case.name, args.size, "float64")
    torch_info, paddle_info = save_reprod_pair(args.out, "metric", stem, torch_values, ours)
    rows = _rows(torch_info, paddle_info, "official_vs_ours")
    for name, (ref, test) in extra.items():
        rows += _rows({"value": ref}, {"value": test}, name)
    return StepResult("metric", case.name, args.size, "float64", rows,
                      notes=["'paddle' side = rsrepro/metrics.py (framework-free; used by Paddle training "
                             "and evaluation); 'torch' side = torch_ref/metrics.py, official-style"])


def main(argv=None) -> int:
    return run_step("metric", run_case, argv)


if __name__ == "__main__":
    raise SystemExit(main())
