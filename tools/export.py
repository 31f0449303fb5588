"""Export a trained model for deployment, convert it to ONNX, and check every backend against dygraph.

    python tools/export.py --config configs/lsnet/lsnet_diffFPN_synthetic_demo.yml --weights best.pdparams \
        --out output/export [--format paddle|onnx] [--check [H W]] [--threads 1 2] \
        [--input_shape -1 3 -1 -1] [--output logits|probability|label]

Writes ``inference.json`` + ``inference.pdiparams`` (Paddle 3.x PIR) and ``deploy.yml``; ``--format onnx`` adds
``model.onnx`` (Paddle2ONNX, opset 17; run by ONNX Runtime or OpenVINO through tools/infer.py --backend).
``--check [H W]`` runs the exported model (``paddle.jit.load``, Paddle Inference, and with onnx ONNX Runtime
and OpenVINO) on real-sized inputs (default 512 x 512 segmentation, 256 x 256 change detection) against dygraph:
a backend whose output differs by more than 1e-5 relative or changes an argmax / thresholded change pixel is
refused; the exact ones are timed at each ``--threads`` count. The results go to ``export_check.json`` and
``backends.json`` (what ``tools/infer.py --backend auto`` reads). If no backend of the requested format is exact
the export is refused (exit 2) and nothing is written; otherwise the folder appears all at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Sequence

from paddle_models.engine.cli import add_config_args, add_trust_arg, load, run_cli
from paddle_models.engine.deploy import FORMATS, export_from_config

export = export_from_config  # the name this tool offered before


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_args(parser)
    parser.add_argument("--weights", help="trained weights (default: the model's initialisation)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=FORMATS, default="paddle",
                        help="paddle: the Paddle program; onnx: also model.onnx (Paddle2ONNX)")
    parser.add_argument("--input_shape", type=int, nargs="+", help="N C H W; -1 = dynamic (default: config)")
    parser.add_argument("--output", choices=["logits", "probability", "label"])
    parser.add_argument("--check", type=int, nargs="*", metavar="H_W",
                        help="check every backend against dygraph (optionally at H W); refuse inexact ones")
    parser.add_argument("--threads", type=int, nargs="+", help="thread counts to time backends at (default 1 and "
                                                               "every core)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per backend (median)")
    parser.add_argument("--cpu_threads", type=int, help="threads of the Paddle Inference predictors of export_check")
    add_trust_arg(parser)
    args = parser.parse_args(argv)
    if args.check is not None and len(args.check) not in (0, 2):
        parser.error("--check takes no value or two (H W)")
    cfg = load(args)
    return export_from_config(cfg, args.weights, args.out, args.input_shape, args.output, args.check or None,
                              args.cpu_threads, trust_pickle=args.trust_pickle, fmt=args.format,
                              check=args.check is not None, threads=args.threads, runs=args.runs)


if __name__ == "__main__":
    sys.exit(run_cli(main))
