"""Predict with a trained model (dygraph): colour-mapped predictions and overlays as PNG (CLI: tools/predict.py).

    # segmentation: image files and/or folders
    python tools/predict.py --config configs/danet/danet_r50_synthetic_demo.yml --weights best.pdparams \
        --images demo_output/data/leftImg8bit/val --out demo_output/predict [--flip --crop_size 64 ...]
    # change detection: pairs matched by file name
    python tools/predict.py --config configs/... --weights ... --t0 A/ --t1 B/ --out pred/ [--threshold 1.0]

Per image: ``<stem>_pred.png`` (colour map), ``<stem>_overlay.png`` (blended over the image) and
``<stem>_label.png`` (class ids, 8-bit; change detection: 0/255 mask).

Segmentation runs the config's evaluation protocol on the val pipeline's normalisation
(``rsrepro.data.normalization_spec``: the configured val transforms, else the dataset class's default, e.g.
FactSeg's ``NormalizePixels`` on the 0-255 scale). With ``eval.mode: slide`` and ``eval.window_rule:
factseg`` that is the evaluator's own streamed ``FactSegSlidingWindow`` (uint8 image, per-window
normalisation, zero padding to /32, probability sum / count, argmax), so the labels equal tools/eval.py's
predictions and full-size iSAID images fit in memory.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import paddle

from rsrepro.data import DATASETS, normalization_spec
from rsrepro.data.io import list_images, pair_images, read_image
from rsrepro.data.transforms import build_transforms, val_transforms
from rsrepro.safe_load import trusted_pickle
from rsrepro.visualize import change_overlay, colorize, image_stem, overlay, save_png

from .builder import build_model
from .distributed import select_device
from .factseg_eval import FactSegEvaluator
from .tasks import apply_cd_preprocess, build_task
from .weights import load_trained_weights

__all__ = ["predict", "segmentation_preprocess", "segmentation_window_protocol"]


def _val_transform_config(cfg: Dict[str, Any]) -> Any:
    val = cfg["dataset"].get("val")
    return (val or {}).get("transforms") or None


def segmentation_preprocess(cfg: Dict[str, Any], dataset_cls: Any = None):
    """The val pipeline of the config (normalisation), without needing the dataset on disk: the configured
    val transforms, else the dataset class's default (its ``default_val_transforms``), else ImageNet's."""
    transforms = _val_transform_config(cfg)
    if transforms:
        return build_transforms(transforms)
    factory = getattr(dataset_cls, "default_val_transforms", None) if isinstance(dataset_cls, type) else None
    if factory is not None:
        return factory()
    return val_transforms()


def segmentation_window_protocol(cfg: Dict[str, Any], task: Any, dataset_cls: Any) -> Any:
    """The evaluator's ``FactSegSlidingWindow`` for ``eval.window_rule: factseg`` (None otherwise), with the
    val pipeline's normalisation on the 0-255 scale, as tools/eval.py normalises raw uint8 windows."""
    if cfg["eval"].get("mode") != "slide" or cfg["eval"].get("window_rule") != "factseg":
        return None
    evaluator = task.build_evaluator(dataset_cls)  # the selection tools/eval.py makes
    if not isinstance(evaluator, FactSegEvaluator):
        raise RuntimeError(f"eval.window_rule 'factseg' built a {type(evaluator).__name__}, not FactSegEvaluator")
    spec = normalization_spec(dataset_cls, _val_transform_config(cfg))
    return dataclasses.replace(evaluator.protocol, mean=tuple(m * spec["scale"] for m in spec["mean"]),
                               std=tuple(s * spec["scale"] for s in spec["std"]))


def predict(cfg: Dict[str, Any], weights: str, out_dir: str, images: Sequence[str] = (),
            t0: Sequence[str] = (), t1: Sequence[str] = (), alpha: float = 0.5,
            device: str | None = None, trust_pickle: bool = False) -> List[Dict[str, str]]:
    """Run the configured protocol on every image (pair) and write the PNGs; returns the written paths.

    All or nothing: on any error (an unreadable image, Ctrl-C, ...) the files this call wrote are removed,
    and ``out_dir`` too when this call created it. ``trust_pickle``: read ``weights`` (and
    ``model.pretrained``) with plain pickle (``rsrepro.safe_load``)."""
    created = not os.path.exists(out_dir)
    written: List[Dict[str, str]] = []
    try:
        with trusted_pickle(trust_pickle or None):
            return _predict(cfg, weights, out_dir, images, t0, t1, alpha, device, written)
    except BaseException:
        for record in written:
            for key in ("pred", "overlay", "label"):
                if record.get(key) and os.path.isfile(record[key]):
                    os.remove(record[key])
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _predict(cfg: Dict[str, Any], weights: str, out_dir: str, images: Sequence[str], t0: Sequence[str],
             t1: Sequence[str], alpha: float, device: str | None, written: List[Dict[str, str]]
             ) -> List[Dict[str, str]]:
    select_device(device)
    task = build_task(cfg)
    model = build_model(cfg)
    load_trained_weights(model, weights)
    model.eval()
    dataset_cls = DATASETS.get((cfg["dataset"].get("val") or cfg["dataset"]["train"])["type"])
    os.makedirs(out_dir, exist_ok=True)
    if task.name == "segmentation":
        windows = segmentation_window_protocol(cfg, task, dataset_cls)
        preprocess = segmentation_preprocess(cfg, dataset_cls)
        spec = normalization_spec(dataset_cls, _val_transform_config(cfg))
        protocol = task.protocol(None, cfg["eval"])
        # black after normalisation (scale-free), as the evaluator pads (DANet's pad_image)
        protocol.pad_value = tuple(-float(m) / float(s) for m, s in zip(spec["mean"], spec["std"]))
        palette = getattr(dataset_cls, "PALETTE", None)
        for path in list_images(images):
            image = read_image(path)
            if windows is not None:  # streamed, on the uint8 image (no full-size float copy)
                labels = windows.predict(model, image)
            else:
                x, _ = preprocess(image, None)
                with paddle.no_grad():
                    labels = task.predict(model, [paddle.to_tensor(x[None])], protocol)[0]
            color = colorize(labels, palette)
            stem = image_stem(path)
            record = {"image": path,
                      "pred": save_png(color, os.path.join(out_dir, f"{stem}_pred.png")),
                      "overlay": save_png(overlay(image, color, alpha), os.path.join(out_dir, f"{stem}_overlay.png")),
                      "label": save_png(labels.astype(np.uint8), os.path.join(out_dir, f"{stem}_label.png"))}
            written.append(record)
            print(f"{path} -> {record['pred']}")
        return written
    preprocess_pair = getattr(dataset_cls, "preprocess_pair", None)
    spec = task.preprocess_spec(dataset_cls)
    if preprocess_pair is None and spec is not None:  # CDD-style: the dataset's own preprocessing
        def preprocess_pair(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            return apply_cd_preprocess(spec, a, b)
    if preprocess_pair is None:
        raise ValueError(f"dataset class {dataset_cls.__name__} has no preprocess_pair(t0, t1) "
                         "(uint8 RGB arrays -> model inputs); change-detection prediction needs it")
    evaluator = task.build_evaluator(None)
    threshold = cfg["eval"].get("threshold")
    if evaluator.decision != "argmax" and threshold is None:
        raise ValueError("change-detection prediction needs a threshold: pass --threshold (e.g. the best "
                         "threshold from tools/eval.py) or --decision argmax")
    for path0, path1 in pair_images(t0, t1):
        image0, image1 = read_image(path0), read_image(path1)
        x0, x1 = preprocess_pair(image0, image1)
        with paddle.no_grad():
            mask, score = task.predict(model, [paddle.to_tensor(x0[None]), paddle.to_tensor(x1[None])],
                                       evaluator, threshold)
        mask = mask[0].astype(np.uint8)
        stem = image_stem(path0)
        record = {"t0": path0, "t1": path1,
                  "label": save_png(mask * 255, os.path.join(out_dir, f"{stem}_label.png")),
                  "overlay": save_png(change_overlay(image1, mask), os.path.join(out_dir, f"{stem}_overlay.png")),
                  "pred": save_png(np.clip(score[0] / max(float(score.max()), 1e-6) * 255, 0, 255),
                                   os.path.join(out_dir, f"{stem}_pred.png"))}
        written.append(record)
        print(f"{path0} + {path1} -> {record['label']}")
    return written
