"""Metrics (rsrepro/metrics.py) against explicit loops, the torch references and PaddleSeg; file writing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from rsrepro import fileio
from rsrepro.fileio import atomic_save, atomic_write_json, atomic_write_text
from rsrepro.metrics import (
    BinaryConfusion,
    ConfusionMatrix,
    ThresholdSweep,
    binary_scores,
    dasnet_official_thresholds,
    dasnet_v2_thresholds,
    format_iou_table,
    plot_pr_curve,
    save_metric_json,
)
from torch_ref import metrics as tref


def _seg_batch(rng, n_classes, shape, ignore_frac=0.1, absent=()):
    label = rng.integers(0, n_classes, size=shape)
    pred = rng.integers(0, n_classes, size=shape)
    for c in absent:  # make class c appear in neither
        label[label == c] = 0
        pred[pred == c] = 0
    label[rng.random(shape) < ignore_frac] = 255
    return pred, label


def _loop_confusion(pred, label, n, ignore=255):
    mat = np.zeros((n, n), dtype=np.int64)
    for p, t in zip(pred.reshape(-1).tolist(), label.reshape(-1).tolist()):
        if t == ignore:
            continue
        mat[t, p] += 1
    return mat


# ---------------------------------------------------------------------------------------------
# ConfusionMatrix
# ---------------------------------------------------------------------------------------------


def test_confusion_matches_explicit_loops():
    rng = np.random.default_rng(1)
    n = 6
    pred, label = _seg_batch(rng, n, (2, 9, 11), absent=(4,))
    cm = ConfusionMatrix(n).update(pred, label)
    ref = _loop_confusion(pred, label, n)
    np.testing.assert_array_equal(cm.matrix, ref)

    ious, accs = [], []
    for c in range(n):
        inter = ref[c, c]
        union = ref[c, :].sum() + ref[:, c].sum() - inter
        ious.append(inter / union if union else 0.0)
        accs.append(inter / ref[c, :].sum() if ref[c, :].sum() else 0.0)
    np.testing.assert_array_equal(cm.iou(), np.array(ious))
    assert cm.iou()[4] == 0.0
    assert cm.miou("all") == pytest.approx(sum(ious) / n, abs=1e-15)
    present = [i for c, i in enumerate(ious) if c != 4]
    assert cm.miou("present") == pytest.approx(sum(present) / (n - 1), abs=1e-15)
    assert cm.miou("all") < cm.miou("present")
    total = ref.sum()
    assert cm.pixel_accuracy() == sum(ref[c, c] for c in range(n)) / total
    np.testing.assert_array_equal(cm.class_accuracy(), np.array(accs))
    assert cm.mean_class_accuracy("present") == pytest.approx(
        np.mean([a for c, a in enumerate(accs) if c != 4])
    )
    po = np.trace(ref) / total
    pe = sum(ref[c, :].sum() * ref[:, c].sum() for c in range(n)) / total**2
    assert cm.kappa() == pytest.approx((po - pe) / (1 - pe), rel=1e-12)


def test_confusion_batch_shape_and_merge_independent():
    rng = np.random.default_rng(2)
    pred, label = _seg_batch(rng, 5, (4, 8, 8))
    whole = ConfusionMatrix(5).update(pred, label)
    per_image = ConfusionMatrix(5)
    for p, t in zip(pred, label):
        per_image.update(p, t)
    halves = ConfusionMatrix(5).update(pred[:2], label[:2]) + ConfusionMatrix(5).update(pred[2:], label[2:])
    flat = ConfusionMatrix(5).update(pred.reshape(-1), label.reshape(-1))
    for other in (per_image, halves, flat):
        np.testing.assert_array_equal(whole.matrix, other.matrix)
    rebuilt = ConfusionMatrix.from_matrix(whole.matrix.astype(np.float32))
    np.testing.assert_array_equal(rebuilt.matrix, whole.matrix)
    whole.reset()
    assert whole.total == 0


def test_ignore_index_handling():
    pred = np.array([[0, 1, 2, 1]])
    label = np.array([[0, 255, 2, 1]], dtype=np.uint8)  # uint8: label * n must not overflow
    cm = ConfusionMatrix(3).update(pred, label)
    assert cm.total == 3 and cm.pixel_accuracy() == 1.0
    # DANet's official convention: ignored pixels are -1
    cm_neg = ConfusionMatrix(3, ignore_index=-1).update(pred, np.where(label == 255, -1, label))
    np.testing.assert_array_equal(cm.matrix, cm_neg.matrix)
    # without an ignore index, 255 is an invalid label -> clear error, or skipped with a warning
    with pytest.raises(ValueError, match=r"1 label pixels outside \[0, 3\).*255"):
        ConfusionMatrix(3, ignore_index=None).update(pred, label)
    lenient = ConfusionMatrix(3, ignore_index=None, invalid_label="ignore")
    with pytest.warns(UserWarning, match="1 label pixels"):
        lenient.update(pred, label)
    assert lenient.invalid_label_count == 1
    np.testing.assert_array_equal(lenient.matrix, cm.matrix)
    with pytest.raises(ValueError, match="ignore_index 1 is a valid class"):
        ConfusionMatrix(3, ignore_index=1)


def test_clear_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"shapes differ, \(2, 3\) vs \(3, 2\)"):
        cm.update(np.zeros((2, 3), int), np.zeros((3, 2), int))
    with pytest.raises(ValueError, match=r"2 predictions outside \[0, 3\) \(values -1, 3\)"):
        cm.update(np.array([0, 3, -1]), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="argmax"):
        cm.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        cm.summary(class_names=["a", "b"])
    with pytest.raises(ValueError, match="cannot merge"):
        cm.merge(ConfusionMatrix(4))
    with pytest.raises(ValueError, match="mode"):
        cm.miou("mean")
    assert cm.total == 0  # nothing was added by the failed updates


def test_summary_table_and_foreground_mean():
    rng = np.random.default_rng(3)
    pred, label = _seg_batch(rng, 4, (1, 6, 6), absent=(3,))
    cm = ConfusionMatrix(4).update(pred, label)
    names = ["background", "ship", "tank", "plane"]
    s = cm.summary(class_names=names, fg_start=1)
    assert s["fg_miou"] == pytest.approx(cm.iou()[1:].mean(), abs=0)
    assert s["per_class"][3]["present"] is False and s["per_class"][3]["iou"] == 0.0
    json.dumps(s, allow_nan=False)  # JSON-ready
    text = format_iou_table(s)
    assert "plane" in text and "(absent)" in text and f"{s['miou']:.4f}" in text and "foreground" in text


# ---------------------------------------------------------------------------------------------
# Against the torch reference (official DANet style) and PaddleSeg
# ---------------------------------------------------------------------------------------------


def test_matches_torch_ref_danet():
    rng = np.random.default_rng(4)
    n = 7
    logits = rng.standard_normal((3, n, 10, 12)).astype(np.float32)
    pred = logits.argmax(1)
    _, label = _seg_batch(rng, n, pred.shape, absent=(6,))
    label[0, 0, :4] = 255
    target = torch.from_numpy(np.where(label == 255, -1, label))  # official: 255 -> -1

    cm = ConfusionMatrix(n).update(pred, label)
    ref = tref.SegmentationMetric(n)
    for b in range(3):  # official loop, one image at a time
        ref.update(torch.from_numpy(logits[b : b + 1]), target[b : b + 1])
    correct, labeled = tref.batch_pix_accuracy(torch.from_numpy(logits), target)
    inter, union = tref.batch_intersection_union(torch.from_numpy(logits), target, n)

    np.testing.assert_array_equal(inter.numpy(), cm.intersection())
    np.testing.assert_array_equal(union.numpy(), cm.union())
    assert (correct, labeled) == (int(np.trace(cm.matrix)), cm.total)
    np.testing.assert_array_equal(ref.iou().numpy(), cm.iou())  # exact: every union >= 2 or 0
    pix_acc, miou = ref.get()
    assert pix_acc == cm.pixel_accuracy()
    # torch and numpy sum the IoUs in different orders: the means may differ in the last bit
    assert abs(miou - cm.miou("all")) <= 2e-16


def test_torch_ref_eps_form_differs_only_at_union_one():
    # a class predicted and labelled on exactly one pixel: official 1/(eps+1), ours 1/1
    pred = np.array([[0, 1, 1]])
    label = np.array([[0, 1, 1]])
    cm = ConfusionMatrix(3).update(pred, label)
    ref = tref.SegmentationMetric(3)
    ref.update_pred(torch.from_numpy(pred), torch.from_numpy(label))
    assert cm.iou()[0] == 1.0 and ref.iou()[0].item() == 1.0 / (1.0 + np.spacing(1)) < 1.0
    assert cm.iou()[1] == ref.iou()[1].item() == 1.0 and cm.iou()[2] == ref.iou()[2].item() == 0.0


def test_matches_paddleseg_metrics():
    import paddle
    from paddleseg.utils import metrics as psm

    rng = np.random.default_rng(5)
    n = 6
    pred, label = _seg_batch(rng, n, (2, 16, 16), absent=(5,))
    cm = ConfusionMatrix(n).update(pred, label)

    # areas computed independently, like calculate_area does
    mask = label != 255
    inter = np.array([np.sum((pred == c) & (label == c) & mask) for c in range(n)], dtype=np.int64)
    parea = np.array([np.sum((pred == c) & mask) for c in range(n)], dtype=np.int64)
    larea = np.array([np.sum(label == c) for c in range(n)], dtype=np.int64)
    ti, tp_, tl = (paddle.to_tensor(a) for a in (inter, parea, larea))

    class_iou, miou = psm.mean_iou(ti, tp_, tl)
    np.testing.assert_array_equal(class_iou, cm.iou())
    assert miou == cm.miou("all")
    class_acc, macc = psm.accuracy(ti, tp_)  # PaddleSeg's "class accuracy" is the precision
    np.testing.assert_array_equal(class_acc, cm.class_precision())
    assert macc == cm.pixel_accuracy()
    assert psm.kappa(ti, tp_, tl) == pytest.approx(cm.kappa(), rel=1e-14)


def test_paddleseg_calculate_area_state():
    """calculate_area concatenates 0-d tensors, which Paddle 3.x refuses; compare if it ever works."""
    import paddle
    from paddleseg.utils import metrics as psm

    rng = np.random.default_rng(11)
    pred, label = _seg_batch(rng, 4, (1, 8, 8))
    try:
        areas = psm.calculate_area(paddle.to_tensor(pred), paddle.to_tensor(label), 4)
    except Exception as exc:
        pytest.xfail(f"paddleseg calculate_area fails on this Paddle: {type(exc).__name__}: {str(exc)[:80]}")
    cm = ConfusionMatrix(4).update(pred, label)
    np.testing.assert_array_equal(areas[0].numpy(), cm.intersection())
    np.testing.assert_array_equal(areas[1].numpy(), cm.pred_area())
    np.testing.assert_array_equal(areas[2].numpy(), cm.label_area())


# ---------------------------------------------------------------------------------------------
# Change detection: binary scores
# ---------------------------------------------------------------------------------------------


def test_binary_scores_hand_example_and_zero_division():
    s = binary_scores(tp=30, fp=10, fn=20, tn=40)
    assert s["precision"] == 0.75 and s["recall"] == 0.6
    assert s["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35) and s["oa"] == 0.7 and s["iou"] == 0.5
    z = binary_scores(0, 0, 0, 5)
    assert (z["precision"], z["recall"], z["f1"], z["iou"], z["oa"]) == (0.0, 0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="fp must be a non-negative integer"):
        binary_scores(1, -1, 0, 0)


def test_binary_confusion_matches_torch_ref_lsnet():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    label = (rng.random((5, 8, 8)) < 0.3).astype(np.int64)
    bc = BinaryConfusion()
    counts = np.zeros(4, dtype=np.int64)
    for b in range(5):
        bc.update_from_logits(logits[b : b + 1], label[b : b + 1])
        _, pred = torch.max(torch.from_numpy(logits[b : b + 1]), 1)
        counts += np.array(tref.lsnet_confusion(pred, torch.from_numpy(label[b : b + 1])))
    tn, fp, fn, tp = (int(v) for v in counts)
    assert bc.counts() == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    ours, ref = bc.result(), tref.lsnet_scores(tn, fp, fn, tp)
    for key in ("precision", "recall", "f1", "oa"):
        assert ours[key] == ref[key], key  # exact: same formulas, same order

    by_threshold = BinaryConfusion().update_from_scores(logits[:, 1] - logits[:, 0], label, 0.0)
    by_mask = BinaryConfusion().update((logits[:, 1] - logits[:, 0]) >= 0, label)
    assert by_threshold.counts() == by_mask.counts()
    with pytest.raises(ValueError, match="2 classes on axis 1"):
        bc.update_from_logits(np.zeros((1, 3, 2, 2)), np.zeros((1, 2, 2), int))
    with pytest.raises(ValueError, match="label pixels outside"):
        BinaryConfusion().update(np.zeros(3, int), np.array([0, 1, 2]))


# ---------------------------------------------------------------------------------------------
# Change detection: threshold sweep
# ---------------------------------------------------------------------------------------------


def _loop_sweep_counts(scores, labels, thresholds, ignore=255):
    """The plain definition, image by image and threshold by threshold."""
    k = len(thresholds)
    fn, fp = np.zeros(k, np.int64), np.zeros(k, np.int64)
    pos_num = neg_num = 0
    for d, y in zip(scores, labels):
        d = d.astype(np.float64)
        valid = y != ignore
        pos, neg = valid & (y == 1), valid & (y == 0)
        pos_num += int(pos.sum())
        neg_num += int(neg.sum())
        for j, t in enumerate(thresholds):
            fn[j] += int(np.sum(pos & (d < t)))
            fp[j] += int(np.sum(neg & (d >= t)))
    return fn, fp, pos_num, neg_num


def _cd_batch(rng, n, size=12):
    labels = (rng.random((n, size, size)) < 0.3).astype(np.int64)
    scores = np.clip(rng.normal(0.6 + 0.8 * labels, 0.35), 0, 2).astype(np.float32)
    return scores, labels


@pytest.mark.parametrize("thresholds", [dasnet_v2_thresholds(), dasnet_official_thresholds()])
def test_sweep_counts_match_loop_and_torch_ref(thresholds):
    rng = np.random.default_rng(7)
    scores, labels = _cd_batch(rng, 4)
    scores = scores.astype(np.float64)  # so that a score can equal a threshold exactly
    labels[0, :2] = 255
    scores[1, 0, :6] = thresholds[[3, 10, 20, 40, 60, 90]]  # exact ties count as changed (d >= t)
    labels[1, 0, :6] = [0, 1, 0, 1, 0, 1]
    sweep = ThresholdSweep(thresholds).update(scores, labels)
    c = sweep.counts()
    fn, fp, pos_num, neg_num = _loop_sweep_counts(scores, labels, thresholds)
    np.testing.assert_array_equal(c["fn"], fn)
    np.testing.assert_array_equal(c["fp"], fp)
    assert (c["pos_num"], c["neg_num"]) == (pos_num, neg_num)
    np.testing.assert_array_equal(c["tp"] + c["fn"], np.full(len(thresholds), pos_num))

    res = sweep.result()
    ref = tref.dasnet_validate(
        [torch.from_numpy(s) for s in scores], [torch.from_numpy(y) for y in labels], thresholds
    )
    np.testing.assert_array_equal(ref["total_fn"], c["fn"])
    np.testing.assert_array_equal(ref["total_fp"], c["fp"])
    np.testing.assert_array_equal(res["precision"], ref["precision"])
    np.testing.assert_array_equal(res["recall"], ref["recall"])
    np.testing.assert_array_equal(res["f"], ref["F"])
    assert res["max_f"] == ref["MaxF"] and res["best_threshold"] == ref["BestThresh"]
    assert res["best_threshold"] == thresholds[res["best_index"]]
    assert res["f"][np.argmax(res["f"])] == res["max_f"] > 0.5


def test_sweep_batch_size_independent():
    rng = np.random.default_rng(8)
    scores, labels = _cd_batch(rng, 8)
    t = dasnet_v2_thresholds()
    bs1, bs4 = ThresholdSweep(t), ThresholdSweep(t)
    for i in range(8):
        bs1.update(scores[i : i + 1], labels[i : i + 1])
    for i in range(0, 8, 4):
        bs4.update(scores[i : i + 4], labels[i : i + 4])
    merged = ThresholdSweep(t).update(scores[:3], labels[:3]) + ThresholdSweep(t).update(
        scores[3:], labels[3:]
    )
    r1, r4, rm = bs1.result(), bs4.result(), merged.result()
    for key in ("tp", "fp", "fn", "tn", "precision", "recall", "f"):
        np.testing.assert_array_equal(r1[key], r4[key])
        np.testing.assert_array_equal(r1[key], rm[key])
    assert r1["max_f"] == r4["max_f"] == rm["max_f"]


def test_official_threshold_preset_bug():
    # separable scores, all above 1: negatives d in [1.2, 1.4], positives d in [1.6, 2.0]
    rng = np.random.default_rng(9)
    labels = (rng.random((2, 16, 16)) < 0.4).astype(np.int64)
    scores = np.where(labels == 1, rng.uniform(1.6, 2.0, labels.shape), rng.uniform(1.2, 1.4, labels.shape))
    official = ThresholdSweep(dasnet_official_thresholds()).update(scores, labels)
    c = official.counts()
    assert dasnet_official_thresholds()[-1] == 1.0 and len(dasnet_official_thresholds()) == 256
    np.testing.assert_array_equal(c["fp"], np.full(256, c["neg_num"]))  # d >= 1: always "changed"
    np.testing.assert_array_equal(c["fn"], np.zeros(256))
    r_off = official.result()
    assert r_off["best_threshold"] <= 1.0
    assert r_off["max_f"] == pytest.approx(
        2 * r_off["best_precision"] / (r_off["best_precision"] + 1), rel=1e-9
    )
    assert r_off["max_f"] < 0.8
    r_v2 = ThresholdSweep(dasnet_v2_thresholds()).update(scores, labels).result()
    assert r_v2["max_f"] == pytest.approx(1.0, abs=1e-9) and 1.4 < r_v2["best_threshold"] <= 1.6


def test_sweep_pr_auc_rule_and_edge_cases():
    # 2 positives (d = 0.5, 0.9), 2 negatives (d = 0.2, 0.7); thresholds 0, 0.4, 0.8, 1.0
    sweep = ThresholdSweep([0.0, 0.4, 0.8, 1.0]).update(
        np.array([0.5, 0.9, 0.2, 0.7]), np.array([1, 1, 0, 0])
    )
    r = sweep.result()
    np.testing.assert_array_equal(r["kept"], [True, True, True, False])  # t = 1.0: TP = 0, dropped
    np.testing.assert_allclose(r["recall"], [1.0, 1.0, 0.5])
    np.testing.assert_allclose(r["precision"], [0.5, 2 / 3, 1.0], rtol=1e-9)
    # path t = 0.8 -> 0.4 -> 0: one trapezoid from (0.5, 1) to (1, 2/3), then zero width
    assert r["pr_auc"] == pytest.approx(0.5 * (1.0 + 2 / 3) / 2, rel=1e-9)
    assert r["best_threshold"] == 0.4 and r["max_f"] == pytest.approx(0.8, rel=1e-9)

    with pytest.warns(UserWarning, match="no positive"):
        empty = ThresholdSweep([0.0, 1.0]).update(np.array([0.3, 0.6]), np.array([0, 0])).result()
    assert empty["max_f"] == 0.0 and empty["best_threshold"] is None

    with pytest.raises(ValueError, match="strictly increasing"):
        ThresholdSweep([0.0, 0.5, 0.5])
    s = ThresholdSweep([0.0, 1.0])
    with pytest.raises(ValueError, match="shapes differ"):
        s.update(np.zeros((2, 2)), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="1 NaN scores"):
        s.update(np.array([np.nan, 0.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="not 0, 1 or ignore_index"):
        s.update(np.array([0.1, 0.2]), np.array([0, 2]))
    lenient = ThresholdSweep([0.0, 1.0], other_labels="negative")
    with pytest.warns(UserWarning, match="counted as unchanged"):
        lenient.update(np.array([0.1, 1.2]), np.array([1, 2]))
    assert lenient.counts()["neg_num"] == 1 and lenient.other_label_count == 1


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _leftovers(folder):
    return [f for f in os.listdir(folder) if ".tmp-" in f]


def test_pr_png_and_metric_json_written_atomically(tmp_path):
    rng = np.random.default_rng(10)
    scores, labels = _cd_batch(rng, 2)
    res = ThresholdSweep(dasnet_v2_thresholds()).update(scores, labels).result()
    png = plot_pr_curve(res, tmp_path / "out" / "pr.png", title="val")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    save_metric_json({**res, "nan_value": float("nan")}, tmp_path / "out" / "metric.json")
    with open(tmp_path / "out" / "metric.json") as f:
        loaded = json.load(f)
    assert loaded["max_f"] == res["max_f"] and loaded["recall"] == res["recall"].tolist()
    assert loaded["nan_value"] is None
    assert _leftovers(tmp_path / "out") == []


def test_failed_write_leaves_target_and_no_temp(tmp_path):
    target = tmp_path / "metric.json"
    atomic_write_text(target, "old")

    def half_write(tmp):
        with open(tmp, "w") as f:
            f.write("{partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save(target, half_write)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []
    with pytest.raises(TypeError, match="cannot write a object to JSON"):
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == "old" and _leftovers(tmp_path) == []
    # np.save keeps the .npy suffix of the temporary name
    atomic_save(tmp_path / "a.npy", lambda t: np.save(t, np.arange(3)))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(3))
    assert _leftovers(tmp_path) == []


def test_unwritable_folder_named(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="folder .*file' is not a directory"):
        atomic_write_text(blocker / "m.json", "{}")

    real_open = os.open

    def deny(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(fileio.os, "open", deny)
    with pytest.raises(PermissionError, match=f"folder '{tmp_path}' is not writable"):
        atomic_write_text(tmp_path / "m.json", "{}")


def test_torch_ref_metrics_registers_nothing_and_has_no_paddle():
    import ast

    import torch_ref

    for registry in (torch_ref.MODELS, torch_ref.LOSSES):
        modules = {registry.get(name).__module__ for name in registry.names()}
        assert tref.__name__ not in modules
    tree = ast.parse(open(tref.__file__).read())
    imported = {
        a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    imported |= {
        (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert "paddle" not in imported and "rsrepro" not in imported  # independent of rsrepro/metrics.py
