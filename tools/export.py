"""Export a trained model to a static Paddle inference model (paddle.jit.save) and check it.

    python tools/export.py --config configs/danet/danet_r50_synthetic_demo.yml --weights best.pdparams \
        --out output/export [--input_shape -1 3 -1 -1] [--output logits|probability|label] [--check 64 128]

Writes ``inference.json`` + ``inference.pdiparams`` (Paddle 3.x PIR) and ``deploy.yml``. With ``--check H W``
the exported model is run (``paddle.jit.load`` and Paddle Inference with and without oneDNN) on a random
input of that size and compared with dygraph; the report goes to ``export_check.json``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Sequence

from paddle_models.engine.cli import add_config_args, add_trust_arg, load, run_cli
from paddle_models.engine.export import export_from_config

export = export_from_config  # the name this tool offered before


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_args(parser)
    parser.add_argument("--weights", help="trained weights (default: the model's initialisation)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--input_shape", type=int, nargs="+", help="N C H W; -1 = dynamic (default: config)")
    parser.add_argument("--output", choices=["logits", "probability", "label"])
    parser.add_argument("--check", type=int, nargs=2, metavar=("H", "W"), help="compare with dygraph at this size")
    parser.add_argument("--cpu_threads", type=int)
    add_trust_arg(parser)
    args = parser.parse_args(argv)
    cfg = load(args)
    return export_from_config(cfg, args.weights, args.out, args.input_shape, args.output, args.check, args.cpu_threads,
                  trust_pickle=args.trust_pickle)


if __name__ == "__main__":
    sys.exit(run_cli(main))
