"""Deploy: run an exported model on image files (no model code, no config needed; CLI: tools/infer.py).

    python tools/infer.py --model_dir output/export --images demo_output/data/leftImg8bit/val --out pred/ \
        [--backend auto|paddle|onnxruntime|openvino] [--cpu_threads 2] [--benchmark 10]
    # GPU users: --backend paddle --device gpu [--gpu_mem 1000] [--use_trt --trt_precision fp16]

Backends (``engine.backends``): Paddle Inference, or the Paddle2ONNX model (``tools/export.py --format onnx``) in
ONNX Runtime or OpenVINO; "auto" (default) takes the fastest backend that ``tools/export.py --check`` found exact
on this machine (recorded in ``backends.json``) and says why. Every backend gets the same inputs and returns
the same output; ``--cpu_threads`` sets each one's thread count.

Paddle Inference's oneDNN (``--onednn``): "auto" (default) enables it with ``onednn_placement_pass`` and
``transfer_layout_pass`` deleted (``export.ONEDNN_DELETED_PASSES`` says why: Paddle 3.3.1's plain oneDNN path
fails on bilinear interpolate, and the layout pass breaks fixed-shape LSNet exports) and falls back to plain
CPU kernels with a logged reason if the predictor fails; "on" (same, no fallback), "plain" (all passes; fails
on DANet), "off".
Preprocessing (normalisation) and the palette come from ``deploy.yml`` written by tools/export.py; change
detection on CDD-style data uses its ``preprocess`` entry (DASNet: RGB -> BGR minus the t0 / t1 means, no std;
LSNet: raw pixels), with the same functions as the dataset, so the inputs equal the evaluation inputs bit for
bit. A change score is thresholded at ``--threshold``, else deploy.yml's ``change.threshold`` (the config's
``eval.threshold``), else 0.5 for a softmax probability; a DASNet distance without a threshold is an error.

Input sizes: a model that needs H and W to be multiples of N (deploy.yml ``size_divisor``; FactSeg: 32)
gets its normalised input zero-padded at the bottom/right to the next multiple and its output cropped back,
as FactSeg's official evaluation pads each window. A segmentation export whose config evaluates with
``eval.window_rule: factseg`` records that protocol (deploy.yml ``window``) and is run through the same
streamed sliding-window code as tools/eval.py (``factseg_eval.FactSegSlidingWindow`` with the predictor as
its runner): 896 windows at stride 512, probabilities summed / counted, argmax, one window row in memory at
a time, so the labels equal the evaluated ones and 13,000 px iSAID images need no whole-image pass. That
needs ``output: probability``; a ``label`` export is refused for an image larger than one window.
``--whole_image`` forces one padded whole-image pass instead. Other exports (DANet, ``eval.window_rule:
danet``) run the whole image in one pass; tools/eval.py's multi-scale / flip / DANet slide protocol is not
applied here (use tools/predict.py for that).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from rsrepro.data.io import list_images, pair_images, read_image
from rsrepro.visualize import change_overlay, colorize, image_stem, overlay, save_png

from .backends import Backend, create_backend
from .export import load_deploy_info, run_predictor
from .factseg_eval import FactSegSlidingWindow
from .tasks import apply_cd_preprocess

__all__ = ["infer", "normalize", "prepare_inputs", "run_padded", "window_protocol", "segment", "change_threshold"]


def normalize(image: np.ndarray, info: Mapping[str, Any]) -> np.ndarray:
    """1 x 3 x H x W float32 model input of a uint8 RGB image, with deploy.yml's normalisation."""
    norm = info["normalize"]
    x = image.astype(np.float32) / np.float32(norm.get("scale", 255.0))
    x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))[None]


def prepare_inputs(pictures: Sequence[Any], info: Dict[str, Any]) -> List[Any]:
    """Model inputs (1 x 3 x H x W float32 each) from uint8 RGB pictures, as deploy.yml says."""
    if info.get("preprocess"):
        return [x[None] for x in apply_cd_preprocess(info["preprocess"], *pictures)]
    return [normalize(p, info) for p in pictures]


def run_model(runner: Any, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """``runner`` is a ``backends.Backend`` or a bare Paddle Inference predictor."""
    return runner.run(inputs) if isinstance(runner, Backend) else run_predictor(runner, inputs)


def run_padded(predictor: Any, inputs: Sequence[Any], divisor: int | None) -> Any:
    """Run on inputs zero-padded at the bottom/right to a multiple of ``divisor`` (after normalisation,
    as FactSeg's ``th_divisible_pad``), and crop the output's last two (spatial) dims back."""
    h, w = inputs[0].shape[-2:]
    if divisor and (h % divisor or w % divisor):
        ph, pw = -(-h // divisor) * divisor, -(-w // divisor) * divisor
        inputs = [np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph - h), (0, pw - w)]) for x in inputs]
    return run_model(predictor, inputs)[..., :h, :w]


def window_protocol(info: Dict[str, Any]):
    """The evaluation's ``FactSegSlidingWindow`` from deploy.yml ``window``, running a predictor; or None."""
    window = info.get("window")
    if not window:
        return None
    if window.get("rule") != "factseg":
        raise ValueError(f"deploy.yml: unknown window rule {window.get('rule')!r} (known: factseg)")
    return FactSegSlidingWindow(window=tuple(window["window"]), stride=tuple(window["stride"]),
                                size_divisor=int(window["size_divisor"]), mean=tuple(window["mean"]),
                                std=tuple(window["std"]), num_classes=int(window["num_classes"]),
                                runner=lambda predictor, x: run_model(predictor, [x]))


def segment(predictor: Any, picture: Any, info: Dict[str, Any], whole_image: bool = False) -> Any:
    """uint8 H x W class ids of a uint8 RGB picture: the evaluation's sliding windows when deploy.yml
    records them (streamed), else one whole-image pass padded to ``size_divisor``."""
    protocol = None if whole_image else window_protocol(info)
    divisor = info.get("size_divisor")
    if protocol is not None:
        if info["output"] == "probability":
            return protocol.predict(predictor, picture)
        count = len(protocol.windows(*picture.shape[:2]))
        if count > 1:
            raise ValueError(f"this export outputs {info['output']!r}, which cannot be merged across the "
                             f"{count} sliding windows of a {picture.shape[0]}x{picture.shape[1]} image (deploy.yml "
                             "window); re-export with --output probability, or pass --whole_image")
        divisor = protocol.size_divisor  # one window covering the image: the same pass as the protocol's
    out = run_padded(predictor, prepare_inputs([picture], info), divisor)
    return out[0] if info["output"] == "label" else out[0].argmax(0)


def change_threshold(info: Dict[str, Any], threshold: float | None) -> float | None:
    """--threshold, else deploy.yml's change.threshold, else 0.5 for a softmax probability, else None."""
    change = info.get("change") or {}
    if threshold is None:
        threshold = change.get("threshold")
    if threshold is None and change.get("score", "softmax") == "softmax":
        threshold = 0.5
    return threshold


def infer(model_dir: str, out_dir: str, images: Sequence[str] = (), t0: Sequence[str] = (), t1: Sequence[str] = (),
          device: str = "cpu", cpu_threads: int | None = None, onednn: str = "auto", gpu_mem: int = 500,
          use_trt: bool = False, trt_precision: str = "fp32", threshold: float | None = None,
          benchmark: int = 0, whole_image: bool = False, backend: str = "auto") -> Dict[str, Any]:
    """Run the exported model in ``model_dir`` on image files (segmentation: ``images``; change detection:
    ``t0`` / ``t1`` folders paired by file name) and write the PNGs to ``out_dir``; returns a summary with the
    backend, its configuration and the timing."""
    info = load_deploy_info(model_dir)
    extra = dict(gpu_mem_mb=gpu_mem, trt=use_trt, trt_precision=trt_precision) if device != "cpu" else {}
    predictor = create_backend(model_dir, backend, cpu_threads, device=device, onednn=onednn, **extra)
    config = predictor.describe()
    print(f"backend: {config['backend']} ({', '.join(f'{k} {v}' for k, v in config.items() if k != 'backend')})")
    os.makedirs(out_dir, exist_ok=True)
    times: List[float] = []
    written = []
    if info["task"] == "segmentation":
        items = [[p] for p in list_images(images)]
    else:
        items = [list(p) for p in pair_images(t0, t1)]
    for paths in items:
        pictures = [read_image(p) for p in paths]
        inputs = None if info["task"] == "segmentation" else prepare_inputs(pictures, info)
        for _ in range(max(1, benchmark)):
            start = time.perf_counter()
            if inputs is None:
                out = segment(predictor, pictures[0], info, whole_image)
            else:
                out = run_padded(predictor, inputs, info.get("size_divisor"))
            times.append(time.perf_counter() - start)
        stem = image_stem(paths[0])
        if info["task"] == "segmentation":
            labels = out
            color = colorize(labels, info.get("palette"))
            written.append(save_png(color, os.path.join(out_dir, f"{stem}_pred.png")))
            save_png(overlay(pictures[0], color), os.path.join(out_dir, f"{stem}_overlay.png"))
        else:
            if info["output"] == "label":
                mask = out[0]
            elif out.ndim == 4:
                mask = out[0].argmax(0)
            else:
                cut = change_threshold(info, threshold)
                if cut is None:
                    raise ValueError(f"the exported model outputs a change score "
                                     f"({(info.get('change') or {}).get('score')}) and neither --threshold nor "
                                     "deploy.yml's change.threshold is set: pass --threshold (e.g. the best "
                                     "threshold that tools/eval.py reports)")
                mask = (out[0] >= cut).astype(np.uint8)
            written.append(save_png(mask.astype(np.uint8) * 255, os.path.join(out_dir, f"{stem}_label.png")))
            save_png(change_overlay(pictures[1], mask), os.path.join(out_dir, f"{stem}_overlay.png"))
    steady = times[1:] if len(times) > 1 else times
    summary = {"images": len(items), "backend": config["backend"], "predictor": config,
               "mean_seconds": float(np.mean(steady)),
               "first_seconds": times[0], "written": written}
    print(f"{len(items)} input(s); first run {times[0]:.3f} s, mean {summary['mean_seconds']:.3f} s per run "
          f"({len(steady)} timed); outputs in {out_dir}")
    return summary
