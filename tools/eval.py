"""Evaluate a trained model with a paper's protocol.

    # DANet single scale + flip, sliding 768 windows on 2048-long images (paper: 79.93 mIoU):
    python tools/eval.py --config configs/danet/danet_r101_mg_cityscapes_768_240e.yml --weights best.pdparams \
        --base_size 2048 --crop_size 768 --flip
    # multi-scale + flip, crop 1024 (paper: 81.49):
    python tools/eval.py --config ... --weights ... --multi_scales --flip --crop_size 1024
    # FactSeg on iSAID (eval.window_rule: factseg -> the streamed official protocol, 896/512 windows;
    # per-class IoU with the iSAID devkit names, 16-class mIoU and 15-class foreground mean; paper: 64.79):
    python tools/eval.py --config configs/factseg/factseg_r50_isaid_60k.yml --weights best.pdparams \
        -o dataset.val.root=/data/iSAID dataset.train=null
    # change detection: threshold sweep + fixed threshold, P-R curve and metric.json in --out_dir
    python tools/eval.py --config configs/dasnet/... --weights ... --thresholds dasnet_v2 --out_dir out/eval

Writes the metrics as JSON (``--out``, default ``<work_dir>/eval_<weights name>.json``) and prints the
per-class IoU table (segmentation) or the sweep summary (change detection).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Sequence

from paddle_models.engine.cli import (
    add_config_args,
    add_protocol_args,
    add_trust_arg,
    load,
    protocol_overrides,
    run_cli,
)
from paddle_models.engine.evaluate import evaluate


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_args(parser)
    parser.add_argument("--weights", required=True, help=".pdparams, a training .pdckpt, or an official .pth")
    parser.add_argument("--split", default="val", help="config dataset section to evaluate (default val)")
    parser.add_argument("--max_samples", type=int, help="only the first N samples")
    parser.add_argument("--out", help="metrics JSON path")
    parser.add_argument("--out_dir", help="change detection: folder for pr_curve.png and metric.json")
    parser.add_argument("--device", choices=["cpu", "gpu"])
    parser.add_argument("--no_progress", action="store_true")
    add_trust_arg(parser)
    add_protocol_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    args = parse_args(argv)
    cfg = load(args, protocol_overrides(args))
    return evaluate(cfg, args.weights, args.split, args.max_samples, args.out, args.out_dir,
                    progress=not args.no_progress, device=args.device, trust_pickle=args.trust_pickle)


if __name__ == "__main__":
    sys.exit(run_cli(main))
