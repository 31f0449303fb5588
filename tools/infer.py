"""Deploy: run an exported model with Paddle Inference (no model code, no config needed).

    python tools/infer.py --model_dir output/export --images demo_output/data/leftImg8bit/val --out pred/ \
        [--backend auto|paddle|onnxruntime|openvino] [--cpu_threads 2] [--benchmark 10]
    # GPU users: --backend paddle --device gpu [--gpu_mem 1000] [--use_trt --trt_precision fp16]

What runs and how (backends, preprocessing, sliding windows): ``paddle_models.engine.infer``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Sequence

from paddle_models.engine.cli import run_cli
from paddle_models.engine.infer import infer


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model_dir", required=True, help="folder written by tools/export.py")
    parser.add_argument("--images", nargs="+", default=[])
    parser.add_argument("--t0", nargs="+", default=[])
    parser.add_argument("--t1", nargs="+", default=[])
    parser.add_argument("--out", required=True)
    parser.add_argument("--backend", choices=["auto", "paddle", "onnxruntime", "openvino"], default="auto",
                        help="auto: the fastest backend tools/export.py --check found exact (backends.json)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--cpu_threads", type=int, help="threads of every backend (default: the runtime's)")
    parser.add_argument("--onednn", choices=["auto", "on", "plain", "off"], default="auto")
    parser.add_argument("--gpu_mem", type=int, default=500, help="initial GPU memory pool (MB)")
    parser.add_argument("--use_trt", action="store_true", help="TensorRT subgraphs (GPU)")
    parser.add_argument("--trt_precision", choices=["fp32", "fp16", "int8"], default="fp32")
    parser.add_argument("--threshold", type=float,
                        help="change score threshold (score outputs; default: deploy.yml, or 0.5 for a probability)")
    parser.add_argument("--benchmark", type=int, default=0, help="run each input N times and report the mean")
    parser.add_argument("--whole_image", action="store_true",
                        help="one padded whole-image pass even where deploy.yml records the evaluation's sliding "
                             "windows (labels may then differ from tools/eval.py; needs memory for the whole image)")
    args = parser.parse_args(argv)
    return infer(args.model_dir, args.out, args.images, args.t0, args.t1, args.device, args.cpu_threads,
                 args.onednn, args.gpu_mem, args.use_trt, args.trt_precision, args.threshold, args.benchmark,
                 args.whole_image, backend=args.backend)


if __name__ == "__main__":
    sys.exit(run_cli(main))
