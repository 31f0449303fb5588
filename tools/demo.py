"""The main job in one command, on a fresh machine, in a few minutes of CPU:

    python tools/demo.py --out demo_output [--iters 120] [--threads 2]

1. writes a small synthetic Cityscapes in the real layout (``leftImg8bit/``, ``gtFine/`` labelIds, lists);
2. trains DANet-R50 from scratch with ``configs/danet/danet_r50_synthetic_demo.yml`` (the paper configs'
   code path: DANet loss, SGD + poly, head x10, DANet augmentation incl. the Paddle 1.x blur/jitter,
   periodic evaluation, checkpoints, best model, VisualDL log);
3. evaluates the best model (whole image + flip, and the DANet sliding-window protocol) and compares the
   mIoU with chance (a majority-class predictor and a uniform random one, on the same pixels);
4. writes ``loss_curve.png``, colour-mapped predictions and overlays of the validation images;
5. exports the model (``paddle.jit.save``), checks the exported model against dygraph (``paddle.jit.load``
   and Paddle Inference with and without oneDNN) and runs the deployed predictor on the val images;
6. prints a summary and writes ``demo_summary.json``.

Why DANet-R50 at 64x128: it is the paper model itself (no toy stand-in, same loss, head, attention and
protocol code as the Cityscapes configs). The 100 steps of batch 8 at 64x64 crops took 5.3 minutes on the
shared 2-core machine (7 CPU-minutes for the whole demo; data loading 0.08 % of the batch cost). After 100
steps from random initialisation the val mIoU is 0.148 over the 19 classes (0.280 over the 10 present;
pixel accuracy 0.641) against 0.012-0.015 for chance predictors (pixel accuracy 0.24 for the majority
class). Paper numbers need Cityscapes, ImageNet weights and GPUs (see configs/danet/*cityscapes*.yml).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, Sequence

if __name__ == "__main__":
    # Paddle reads the thread count when it starts: set it before the first import of paddle.
    _threads = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--threads"), None)
    os.environ.setdefault("OMP_NUM_THREADS", _threads or str(os.cpu_count() or 2))

import numpy as np  # noqa: E402

from paddle_models.engine.builder import build_dataset, build_model  # noqa: E402
from paddle_models.engine.cli import run_cli  # noqa: E402
from paddle_models.engine.distributed import select_device  # noqa: E402
from paddle_models.engine.evaluate import evaluate  # noqa: E402
from paddle_models.engine.export import check_export, export_model  # noqa: E402
from paddle_models.engine.infer import infer  # noqa: E402
from paddle_models.engine.predict import predict  # noqa: E402
from paddle_models.engine.run_config import load_run_config  # noqa: E402
from paddle_models.engine.tasks import build_task  # noqa: E402
from paddle_models.engine.trainer import Trainer  # noqa: E402
from paddle_models.engine.weights import load_weights  # noqa: E402
from rsrepro.data.synthetic import generate_cityscapes  # noqa: E402
from rsrepro.fileio import atomic_write_json  # noqa: E402
from rsrepro.metrics import ConfusionMatrix  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = os.path.join(REPO, "configs", "danet", "danet_r50_synthetic_demo.yml")


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


def run_demo(out: str, iters: int | None = None, num_train: int = 48, num_val: int = 8,
             size: Sequence[int] = (64, 128), progress: bool = True) -> Dict[str, Any]:
    timings: Dict[str, float] = {}
    start = time.perf_counter()
    data_root = os.path.join(out, "data")
    generate_cityscapes(data_root, num_train=num_train, num_val=num_val, size=tuple(size), seed=0)
    timings["data"] = time.perf_counter() - start
    print(f"[demo] synthetic Cityscapes: {num_train} train / {num_val} val images of {size[0]}x{size[1]} "
          f"in {data_root}")

    work = os.path.join(out, "train")
    overrides = [f"dataset.train.root={data_root}", f"dataset.val.root={data_root}", f"work_dir={work}"]
    if iters is not None:
        overrides.append(f"train.iters={iters}")
    cfg = load_run_config(DEMO_CONFIG, overrides)
    select_device("cpu")
    t = time.perf_counter()
    summary = Trainer(cfg, work, progress=progress).train()
    timings["train"] = time.perf_counter() - t
    best = summary["best"]["path"] or summary["checkpoint"]

    t = time.perf_counter()
    whole = evaluate(cfg, best, out=os.path.join(out, "eval_whole_flip.json"), progress=progress)
    slide_cfg = load_run_config(DEMO_CONFIG, overrides + ["eval.mode=slide", "eval.crop_size=64", "eval.flip=true"])
    slide = evaluate(slide_cfg, best, out=os.path.join(out, "eval_slide64_flip.json"), progress=progress)
    timings["eval"] = time.perf_counter() - t
    val = build_dataset(cfg, "val")
    chance = chance_baselines(val, 19, build_dataset(cfg, "train"))

    t = time.perf_counter()
    val_images = os.path.join(data_root, "leftImg8bit", "val")
    predict(cfg, best, os.path.join(out, "predict"), images=[val_images])
    task = build_task(cfg)
    model = build_model(cfg)
    load_weights(model, best)
    model.eval()
    export_dir = os.path.join(out, "export")
    export_model(model, task, export_dir, cfg["export"]["input_shape"], cfg["export"]["output"], cfg, val)
    image, _ = val[0]
    check = check_export(model, task, export_dir, [image[None].astype(np.float32)], predictors=("off", "auto"))
    atomic_write_json(os.path.join(export_dir, "export_check.json"), check)
    deployed = infer(export_dir, os.path.join(out, "infer"), images=[val_images], onednn="auto")
    timings["predict_export_infer"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start

    result = {
        "model": "danet resnet50 (from scratch)",
        "config": DEMO_CONFIG,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "train": {k: summary[k] for k in ("iteration", "seconds", "final_loss", "best", "line", "reader_cost_seconds",
                                          "batch_cost_seconds", "reader_share")},
        "eval_whole_flip": {k: whole[k] for k in ("miou", "miou_present", "pixel_accuracy")},
        "eval_slide64_flip": {k: slide[k] for k in ("miou", "miou_present", "pixel_accuracy")},
        "chance": chance,
        "export_check": {k: {m: v for m, v in check[k].items() if m in ("max_abs_diff", "max_rel_diff", "rel_l2",
                                                                         "argmax_agreement", "error")}
                         for k in check if k.startswith(("jit", "predictor"))},
        "predictor": deployed["predictor"],
        "timings_seconds": timings,
        "files": {"loss_curve": os.path.join(work, "loss_curve.png"), "visualdl": os.path.join(work, "vdl"),
                  "predictions": os.path.join(out, "predict"), "export": export_dir,
                  "deployed_predictions": os.path.join(out, "infer")},
    }
    atomic_write_json(os.path.join(out, "demo_summary.json"), result)
    w, c = result["eval_whole_flip"], chance
    print("\n[demo] ================================ summary ================================")
    print(f"[demo] trained {summary['iteration']} iterations in {timings['train'] / 60:.1f} min "
          f"({os.environ.get('OMP_NUM_THREADS')} threads); final loss {summary['final_loss']:.3f}; data loading "
          f"{100 * summary['reader_share']:.1f} % of the batch cost ({summary['reader_cost_seconds']:.1f} s of "
          f"{summary['batch_cost_seconds']:.1f} s)")
    print(f"[demo] val mIoU {w['miou']:.4f} over 19 classes ({w['miou_present']:.4f} over the classes present), "
          f"pixel accuracy {w['pixel_accuracy']:.4f} (whole image + flip)")
    print(f"[demo] sliding window 64 + flip: mIoU {slide['miou']:.4f}, pixel accuracy {slide['pixel_accuracy']:.4f}")
    print(f"[demo] chance: majority class mIoU {c['majority']['miou']:.4f} / pixAcc "
          f"{c['majority']['pixel_accuracy']:.4f}; uniform random mIoU {c['uniform']['miou']:.4f} / pixAcc "
          f"{c['uniform']['pixel_accuracy']:.4f}")
    for key, entry in result["export_check"].items():
        text = entry.get("error") or (f"max |diff| {entry['max_abs_diff']:.3g} (relative {entry['max_rel_diff']:.2g}), "
                                      f"argmax agreement {entry.get('argmax_agreement', float('nan')):.4f}")
        print(f"[demo] exported vs dygraph, {key}: {text}")
    print(f"[demo] deployed predictor: {deployed['predictor']}")
    print(f"[demo] total {timings['total'] / 60:.1f} min; everything under {out} (demo_summary.json, "
          f"train/loss_curve.png, train/vdl: visualdl --logdir {os.path.join(work, 'vdl')})")
    return result


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", default="demo_output", help="output folder (data, training, evaluation, export)")
    parser.add_argument("--iters", type=int, help="training iterations (default: the demo config's)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CPU threads for Paddle")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    return run_demo(args.out, args.iters, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(run_cli(main))
