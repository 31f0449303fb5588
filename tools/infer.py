"""Deploy: run an exported model with Paddle Inference (no model code, no config needed).

    python tools/infer.py --model_dir output/export --images demo_output/data/leftImg8bit/val --out pred/ \
        [--device cpu --cpu_threads 2 --onednn auto] [--benchmark 10]
    # GPU users: --device gpu [--gpu_mem 1000] [--use_trt --trt_precision fp16]

oneDNN (``--onednn``): "auto" (default) enables it with ``onednn_placement_pass`` deleted — Paddle 3.3.1's
plain oneDNN path fails on bilinear interpolate — and falls back to plain CPU kernels with a logged reason
if the predictor fails; "on", "plain" (all passes; fails on DANet), "off".
Preprocessing (normalisation) and the palette come from ``deploy.yml`` written by tools/export.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import run_cli  # noqa: E402


def normalize(image, info: Dict[str, Any]):
    import numpy as np

    norm = info["normalize"]
    x = image.astype(np.float32) / np.float32(norm.get("scale", 255.0))
    x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))[None]


def infer(model_dir: str, out_dir: str, images: Sequence[str] = (), t0: Sequence[str] = (), t1: Sequence[str] = (),
          device: str = "cpu", cpu_threads: int | None = None, onednn: str = "auto", gpu_mem: int = 500,
          use_trt: bool = False, trt_precision: str = "fp32", threshold: float = 0.5,
          benchmark: int = 0) -> Dict[str, Any]:
    import numpy as np

    from common.visualize import change_overlay, colorize, image_stem, overlay, save_png
    from data.io import read_image
    from paddle_models.engine.export import create_predictor, load_deploy_info, run_predictor
    from tools.predict import list_images, pair_images

    info = load_deploy_info(model_dir)
    predictor, config = create_predictor(model_dir, device, cpu_threads=cpu_threads, onednn=onednn,
                                         gpu_mem_mb=gpu_mem, trt=use_trt, trt_precision=trt_precision)
    print(f"predictor: {config}")
    os.makedirs(out_dir, exist_ok=True)
    times: List[float] = []
    written = []
    if info["task"] == "segmentation":
        items = [[p] for p in list_images(images)]
    else:
        items = [list(p) for p in pair_images(t0, t1)]
    for paths in items:
        pictures = [read_image(p) for p in paths]
        inputs = [normalize(p, info) for p in pictures]
        start = time.perf_counter()
        out = run_predictor(predictor, inputs)
        times.append(time.perf_counter() - start)
        for _ in range(max(0, benchmark - 1)):
            start = time.perf_counter()
            run_predictor(predictor, inputs)
            times.append(time.perf_counter() - start)
        stem = image_stem(paths[0])
        if info["task"] == "segmentation":
            labels = out[0] if info["output"] == "label" else out[0].argmax(0)
            color = colorize(labels, info.get("palette"))
            written.append(save_png(color, os.path.join(out_dir, f"{stem}_pred.png")))
            save_png(overlay(pictures[0], color), os.path.join(out_dir, f"{stem}_overlay.png"))
        else:
            if info["output"] == "label":
                mask = out[0]
            elif out.ndim == 4:
                mask = out[0].argmax(0)
            else:
                mask = (out[0] >= threshold).astype(np.uint8)
            written.append(save_png(mask.astype(np.uint8) * 255, os.path.join(out_dir, f"{stem}_label.png")))
            save_png(change_overlay(pictures[1], mask), os.path.join(out_dir, f"{stem}_overlay.png"))
    steady = times[1:] if len(times) > 1 else times
    summary = {"images": len(items), "predictor": config, "mean_seconds": float(np.mean(steady)),
               "first_seconds": times[0], "written": written}
    print(f"{len(items)} input(s); first run {times[0]:.3f} s, mean {summary['mean_seconds']:.3f} s per run "
          f"({len(steady)} timed); outputs in {out_dir}")
    return summary


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model_dir", required=True, help="folder written by tools/export.py")
    parser.add_argument("--images", nargs="+", default=[])
    parser.add_argument("--t0", nargs="+", default=[])
    parser.add_argument("--t1", nargs="+", default=[])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--cpu_threads", type=int)
    parser.add_argument("--onednn", choices=["auto", "on", "plain", "off"], default="auto")
    parser.add_argument("--gpu_mem", type=int, default=500, help="initial GPU memory pool (MB)")
    parser.add_argument("--use_trt", action="store_true", help="TensorRT subgraphs (GPU)")
    parser.add_argument("--trt_precision", choices=["fp32", "fp16", "int8"], default="fp32")
    parser.add_argument("--threshold", type=float, default=0.5, help="change score threshold (score outputs)")
    parser.add_argument("--benchmark", type=int, default=0, help="run each input N times and report the mean")
    args = parser.parse_args(argv)
    return infer(args.model_dir, args.out, args.images, args.t0, args.t1, args.device, args.cpu_threads,
                 args.onednn, args.gpu_mem, args.use_trt, args.trt_precision, args.threshold, args.benchmark)


if __name__ == "__main__":
    sys.exit(run_cli(main))
