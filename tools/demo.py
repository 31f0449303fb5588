"""The main job in one command, on a fresh machine, in a few minutes of CPU (``make demo [MODEL=lsnet]``):

    python tools/demo.py --model danet --out demo_output     # scene segmentation (default)
    python tools/demo.py --model lsnet --out demo_output     # change detection

DANet-R50 (``configs/danet/danet_r50_synthetic_demo.yml``): a synthetic Cityscapes of 256 x 512 street scenes in the
real layout; training on rescaled crops with the paper's code path (DANet loss, SGD + poly, head x10, DANet
augmentation), evaluation with the DANet protocol at ``eval.base_size`` (the images are rescaled to the training
scale and the scores back, as the paper evaluates 2048-wide images at base size 2048), mIoU against two chance
predictors, colour-mapped predictions and overlays.

LSNet diffFPN (``configs/lsnet/lsnet_diffFPN_synthetic_demo.yml``): synthetic CDD image pairs (seasons, lighting,
buildings and cars that appear, vanish or change) in the real layout with Otsu ``OUT_binary`` labels; training
with the official augmentation, loss and AdamW; the dataset-level P / R / F1 / OA at the argmax, the max-F of the
threshold sweep and its P-R curve, and one ``t0 | t1 | label | prediction`` PNG per val pair.

Both then export the best model (Paddle program + ONNX), check every backend against dygraph at the demo's image
size (``backends.json``), and run the deployed model on the val images through the fastest exact backend
(``tools/infer.py --backend auto``); the summary says which backend ran, how fast, with how many threads, and
writes ``demo_summary.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Sequence

if __name__ == "__main__":
    # Paddle reads the thread count when it starts: set it before the first import of paddle.
    _threads = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--threads"), None)
    os.environ.setdefault("OMP_NUM_THREADS", _threads or str(os.cpu_count() or 2))

import numpy as np  # noqa: E402
from paddle.base.core import set_num_threads as set_math_threads  # noqa: E402

from paddle_models.engine.builder import build_dataset  # noqa: E402
from paddle_models.engine.cli import run_cli  # noqa: E402
from paddle_models.engine.deploy import export_from_config  # noqa: E402
from paddle_models.engine.distributed import select_device  # noqa: E402
from paddle_models.engine.evaluate import evaluate  # noqa: E402
from paddle_models.engine.infer import infer  # noqa: E402
from paddle_models.engine.predict import predict  # noqa: E402
from paddle_models.engine.run_config import load_run_config  # noqa: E402
from paddle_models.engine.trainer import Trainer  # noqa: E402
from rsrepro.data.io import read_image, read_mask  # noqa: E402
from rsrepro.data.synthetic import generate_cdd, generate_cityscapes  # noqa: E402
from rsrepro.fileio import atomic_write_json  # noqa: E402
from rsrepro.metrics import ConfusionMatrix, binary_scores  # noqa: E402
from rsrepro.visualize import save_png, side_by_side  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"danet": os.path.join(REPO, "configs", "danet", "danet_r50_synthetic_demo.yml"),
           "lsnet": os.path.join(REPO, "configs", "lsnet", "lsnet_diffFPN_synthetic_demo.yml")}

# Math-library threads while training (see _train): DANet's convolutions use every core, LSNet's step does not.
TRAIN_THREADS = {"danet": os.cpu_count() or 2, "lsnet": 1}


def chance_baselines(dataset: Any, num_classes: int, train_dataset: Any) -> Dict[str, Any]:
    """mIoU / pixel accuracy of two chance predictors on the val labels.

    majority: every pixel gets the most frequent class of the TRAINING labels; uniform: every pixel a
    class drawn uniformly from the 19 (seeded). Both on exactly the pixels the evaluation counts."""
    counts = np.zeros(num_classes, np.int64)
    for index in range(len(train_dataset)):
        _, label = train_dataset.read_pair(index)
        keep = label != 255
        counts += np.bincount(label[keep].astype(np.int64), minlength=num_classes)[:num_classes]
    majority = int(counts.argmax())
    rng = np.random.default_rng(0)
    major, uniform = ConfusionMatrix(num_classes), ConfusionMatrix(num_classes)
    for index in range(len(dataset)):
        _, label = dataset.read_pair(index)
        label = label.astype(np.int64)
        major.update(np.full_like(label, majority), label)
        uniform.update(rng.integers(0, num_classes, label.shape), label)
    return {"majority_class": majority,
            "majority": {"miou": major.miou(), "miou_present": major.miou("present"),
                         "pixel_accuracy": major.pixel_accuracy()},
            "uniform": {"miou": uniform.miou(), "miou_present": uniform.miou("present"),
                        "pixel_accuracy": uniform.pixel_accuracy()}}


def _train(model: str, data_root: str, length: List[str], work: str, progress: bool,
           threads: int | None) -> tuple[Dict[str, Any], Dict[str, Any], str, int]:
    """Train with ``threads`` math-library threads (``TRAIN_THREADS``: the faster count for each demo on this 2-core
    VM, measured with the demo itself: DANet 2.47 s per iteration with 2 threads, 4.05 s with 1; LSNet 1.36 s
    with 2, 0.98 s with 1 -- LSNet's step is per-op overhead, which a second thread only synchronises). The export
    check and the deployment measure and run at 1 and at all threads either way."""
    threads = threads or TRAIN_THREADS[model]
    overrides = [f"dataset.train.root={data_root}", f"dataset.val.root={data_root}", *length, f"work_dir={work}"]
    cfg = load_run_config(CONFIGS[model], overrides)
    select_device("cpu")
    set_math_threads(threads)
    try:
        summary = Trainer(cfg, work, progress=progress).train()
    finally:
        set_math_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    return cfg, summary, summary["best"]["path"] or summary["checkpoint"], threads


def _deploy(cfg: Dict[str, Any], weights: str, out: str, size: Sequence[int], images: Dict[str, Any],
            threshold: float | None = None) -> Dict[str, Any]:
    """Export (Paddle + ONNX), check every backend at ``size`` and 1 / all threads, infer with the fastest."""
    export_dir = os.path.join(out, "export")
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    result = export_from_config(cfg, weights, export_dir, check_size=size, fmt="onnx", check=True,
                                threads=sorted({1, threads}), runs=3)
    backends = result["check"]["backends"]
    deployed = infer(export_dir, os.path.join(out, "infer"), backend="auto", cpu_threads=threads, benchmark=3,
                     threshold=threshold, **images)
    return {"export_dir": export_dir, "backends": {k: {m: v for m, v in r.items() if m != "config"}
                                                   for k, r in backends["backends"].items()},
            "timings": backends["timings"], "auto": backends.get("auto"), "deployed": deployed, "threads": threads}


def _backend_lines(deploy: Dict[str, Any]) -> List[str]:
    d = deploy["deployed"]
    chosen = d["predictor"].get("chosen_because", "")
    lines = [f"deployed with {d['backend']} at {deploy['threads']} thread(s): {d['mean_seconds']:.3f} s per input "
             f"(mean of the timed runs); {chosen}"]
    for count, row in deploy["timings"].items():
        lines.append(f"backends at {count} thread(s), s per run: "
                     + ", ".join(f"{k} {v:.3f}" for k, v in sorted(row.items(), key=lambda kv: kv[1])))
    for name, entry in deploy["backends"].items():
        lines.append(f"{name} vs dygraph: max rel. diff {entry.get('max_rel_diff', float('nan')):.1e}, "
                     f"{'exact' if entry.get('exact') else 'REFUSED: ' + str(entry.get('reason'))}")
    return lines


def run_danet_demo(out: str, iters: int | None = None, num_train: int = 24, num_val: int = 4,
                   size: Sequence[int] = (256, 512), progress: bool = True,
                   train_threads: int | None = None) -> Dict[str, Any]:
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    data_root = os.path.join(out, "data")
    generate_cityscapes(data_root, num_train=num_train, num_val=num_val, size=tuple(size), seed=0)
    timings["data"] = time.perf_counter() - start
    print(f"[demo] synthetic Cityscapes: {num_train} train / {num_val} val images of {size[0]}x{size[1]} in "
          f"{data_root}")
    work = os.path.join(out, "train")
    t = time.perf_counter()
    cfg, summary, best, train_threads = _train("danet", data_root, [f"train.iters={iters}"] if iters else [], work,
                                               progress, train_threads)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    whole = evaluate(cfg, best, out=os.path.join(out, "eval_whole_flip.json"), progress=progress)
    chance = chance_baselines(build_dataset(cfg, "val"), 19, build_dataset(cfg, "train"))
    timings["eval"] = time.perf_counter() - t
    t = time.perf_counter()
    val_images = os.path.join(data_root, "leftImg8bit", "val")
    predict(cfg, best, os.path.join(out, "predict"), images=[val_images])
    timings["predict"] = time.perf_counter() - t
    t = time.perf_counter()
    deploy = _deploy(cfg, best, out, size, {"images": [val_images]})
    timings["export_check_infer"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    result = {
        "model": "danet resnet50 (from scratch)", "config": CONFIGS["danet"], "images": list(size),
        "threads": deploy["threads"],
        "train": {**{k: summary[k] for k in ("iteration", "seconds", "final_loss", "best", "line", "reader_share")},
                  "math_threads": train_threads},
        "eval_whole_flip": {k: whole[k] for k in ("miou", "miou_present", "pixel_accuracy")},
        "chance": chance, "deployment": deploy, "timings_seconds": timings,
        "files": {"loss_curve": os.path.join(work, "loss_curve.png"), "visualdl": os.path.join(work, "vdl"),
                  "predictions": os.path.join(out, "predict"), "export": deploy["export_dir"],
                  "deployed_predictions": os.path.join(out, "infer")},
    }
    atomic_write_json(os.path.join(out, "demo_summary.json"), result)
    w, c = result["eval_whole_flip"], chance
    lines = [f"trained {summary['iteration']} iterations in {timings['train'] / 60:.1f} min ({train_threads} "
             f"math-library thread(s)); final loss {summary['final_loss']:.3f}",
             f"val mIoU {w['miou']:.4f} over 19 classes ({w['miou_present']:.4f} over the classes present), pixel "
             f"accuracy {w['pixel_accuracy']:.4f} (DANet protocol at base size {cfg['eval']['base_size']} + flip)",
             f"chance: majority class mIoU {c['majority']['miou']:.4f} / pixAcc {c['majority']['pixel_accuracy']:.4f}; "
             f"uniform random mIoU {c['uniform']['miou']:.4f}"] + _backend_lines(deploy)
    _print_summary(lines, timings, out, work)
    return result


def _cd_side_by_side(root: str, predictions: str, out_dir: str, zoom: int = 4) -> List[str]:
    """t0 | t1 | label | prediction, one PNG per val pair; each panel enlarged ``zoom`` times (nearest pixel, so
    the PNG shows the model's own pixels) to be visible at the demo's 64 x 64."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in sorted(os.listdir(os.path.join(root, "val", "A"))):
        stem = os.path.splitext(name)[0]
        t0, t1 = read_image(os.path.join(root, "val", "A", name)), read_image(os.path.join(root, "val", "B", name))
        label = read_mask(os.path.join(root, "val", "OUT_binary", stem + ".png"))
        pred = np.asarray(read_mask(os.path.join(predictions, f"{stem}_label.png")))
        panels = [t0, t1, (label > 0).astype(np.uint8) * 255, (pred > 0).astype(np.uint8) * 255]
        panels = [np.repeat(np.repeat(np.asarray(p), zoom, axis=0), zoom, axis=1) for p in panels]
        panel = side_by_side(panels, ["t0", "t1", "label", "prediction"])
        written.append(save_png(panel, os.path.join(out_dir, f"{stem}_t0_t1_label_pred.png")))
    return written


def run_lsnet_demo(out: str, epochs: int | None = None, num_train: int = 48, num_val: int = 8, size: int = 64,
                   progress: bool = True, train_threads: int | None = None) -> Dict[str, Any]:
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    data_root = os.path.join(out, "data")
    generate_cdd(data_root, num_train=num_train, num_val=num_val, num_test=0, size=size, seed=0)
    timings["data"] = time.perf_counter() - start
    print(f"[demo] synthetic CDD: {num_train} train / {num_val} val pairs of {size}x{size} in {data_root}")
    work = os.path.join(out, "train")
    t = time.perf_counter()
    cfg, summary, best, train_threads = _train("lsnet", data_root, [f"train.epochs={epochs}"] if epochs else [],
                                               work, progress, train_threads)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    eval_dir = os.path.join(out, "eval")
    metric = evaluate(cfg, best, out=os.path.join(eval_dir, "metric_summary.json"), out_dir=eval_dir,
                      progress=progress)
    timings["eval"] = time.perf_counter() - t
    fixed, sweep = metric["fixed"], metric["sweep"]
    positives = sweep["pos_num"] / max(1, sweep["pos_num"] + sweep["neg_num"])
    chance = binary_scores(sweep["pos_num"], sweep["neg_num"], 0, 0)

    t = time.perf_counter()
    folders = {"t0": [os.path.join(data_root, "val", "A")], "t1": [os.path.join(data_root, "val", "B")]}
    deploy = _deploy(cfg, best, out, (size, size), folders)
    panels = _cd_side_by_side(data_root, os.path.join(out, "infer"), os.path.join(out, "side_by_side"))
    timings["export_check_infer"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    result = {
        "model": "lsnet diffFPN (from scratch)", "config": CONFIGS["lsnet"], "pairs": [size, size],
        "threads": deploy["threads"],
        "train": {**{k: summary[k] for k in ("iteration", "seconds", "final_loss", "best", "line", "reader_share")},
                  "math_threads": train_threads},
        "eval": {"argmax": {k: fixed[k] for k in ("precision", "recall", "f1", "oa", "iou")},
                 "max_f": sweep["max_f"], "best_threshold": sweep["best_threshold"], "pr_auc": sweep["pr_auc"]},
        "chance": {"changed_fraction": positives, "f1_all_changed": chance["f1"]},
        "deployment": deploy, "timings_seconds": timings,
        "files": {"loss_curve": os.path.join(work, "loss_curve.png"),
                  "pr_curve": os.path.join(eval_dir, "pr_curve.png"),
                  "metric_json": os.path.join(eval_dir, "metric.json"), "side_by_side": panels,
                  "export": deploy["export_dir"], "deployed_predictions": os.path.join(out, "infer")},
    }
    atomic_write_json(os.path.join(out, "demo_summary.json"), result)
    lines = [f"trained {summary['iteration']} iterations in {timings['train'] / 60:.1f} min ({train_threads} "
             f"math-library thread(s)); final loss {summary['final_loss']:.3f}",
             f"val (dataset level, argmax): P {fixed['precision']:.4f}  R {fixed['recall']:.4f}  F1 {fixed['f1']:.4f}  "
             f"OA {fixed['oa']:.4f}; sweep max-F {sweep['max_f']:.4f}, PR-AUC {sweep['pr_auc']:.4f} "
             f"({eval_dir}/pr_curve.png)",
             f"chance: every pixel changed gives F1 {chance['f1']:.4f} ({positives:.1%} of val pixels changed)",
             f"t0 | t1 | label | prediction: {os.path.dirname(panels[0]) if panels else '-'}"] + _backend_lines(deploy)
    _print_summary(lines, timings, out, work)
    return result


def _print_summary(lines: List[str], timings: Dict[str, float], out: str, work: str) -> None:
    print("\n[demo] ================================ summary ================================")
    for line in lines:
        print(f"[demo] {line}")
    print(f"[demo] total {timings['total'] / 60:.1f} min; everything under {out} (demo_summary.json, "
          f"train/loss_curve.png, train/vdl: visualdl --logdir {os.path.join(work, 'vdl')})")


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", choices=sorted(CONFIGS), default="danet")
    parser.add_argument("--out", default="demo_output", help="output folder (data, training, evaluation, export)")
    parser.add_argument("--iters", type=int, help="DANet: training iterations (default: the demo config's)")
    parser.add_argument("--epochs", type=int, help="LSNet: training epochs (default: the demo config's)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CPU threads")
    parser.add_argument("--train_threads", type=int, default=None,
                        help="math-library threads while training (default: TRAIN_THREADS, the faster count per demo)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    out = os.path.join(args.out, args.model) if os.path.basename(os.path.normpath(args.out)) != args.model else args.out
    if args.model == "lsnet":
        return run_lsnet_demo(out, args.epochs, progress=not args.no_progress, train_threads=args.train_threads)
    return run_danet_demo(out, args.iters, progress=not args.no_progress, train_threads=args.train_threads)


if __name__ == "__main__":
    sys.exit(run_cli(main))
