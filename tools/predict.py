"""Predict with a trained model (dygraph): colour-mapped predictions and overlays as PNG.

    # segmentation: image files and/or folders
    python tools/predict.py --config configs/danet/danet_r50_synthetic_demo.yml --weights best.pdparams \
        --images demo_output/data/leftImg8bit/val --out demo_output/predict [--flip --crop_size 64 ...]
    # change detection: pairs matched by file name
    python tools/predict.py --config configs/... --weights ... --t0 A/ --t1 B/ --out pred/ [--threshold 1.0]

What runs and what is written: ``paddle_models.engine.predict``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Sequence

from paddle_models.engine.cli import (
    add_config_args,
    add_protocol_args,
    add_trust_arg,
    load,
    protocol_overrides,
    run_cli,
)
from paddle_models.engine.predict import predict
from rsrepro.data.io import list_images, pair_images  # noqa: F401  (the names this tool offered before)


def main(argv: Sequence[str] | None = None) -> List[Dict[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_args(parser)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--images", nargs="+", default=[], help="segmentation: image files / folders")
    parser.add_argument("--t0", nargs="+", default=[], help="change detection: first-time images / folders")
    parser.add_argument("--t1", nargs="+", default=[], help="change detection: second-time images / folders")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    parser.add_argument("--device", choices=["cpu", "gpu"])
    add_trust_arg(parser)
    add_protocol_args(parser)
    args = parser.parse_args(argv)
    if not args.images and not (args.t0 and args.t1):
        parser.error("give --images (segmentation) or --t0 and --t1 (change detection)")
    cfg = load(args, protocol_overrides(args))
    return predict(cfg, args.weights, args.out, args.images, args.t0, args.t1, args.alpha, args.device,
                   trust_pickle=args.trust_pickle)


if __name__ == "__main__":
    sys.exit(run_cli(main))
