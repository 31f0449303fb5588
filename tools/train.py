"""Train a model from a config (Paddle dygraph).

    python tools/train.py --config configs/danet/danet_r101_mg_cityscapes_768_240e.yml \
        [--work_dir output/danet_r101] [--resume output/danet_r101] [--amp O1] [-o train.iters=1000 ...]

    # data parallel (GPUs, or CPU processes with gloo):
    python -m paddle.distributed.launch --nproc_per_node 4 tools/train.py --config ...

Exit codes: 0 done, 2 bad config / data / checkpoint, 3 stopped on a NaN/Inf loss.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, Sequence

from paddle_models.engine.cli import add_config_args, add_trust_arg, load, run_cli
from paddle_models.engine.trainer import Trainer
from rsrepro.config import describe_schema, dump_config


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_args(parser, required=False)
    parser.add_argument("--work_dir", help="output folder (default: config work_dir or output/<config name>)")
    parser.add_argument("--resume", help="checkpoint file, or a work dir / checkpoints folder (its latest)")
    parser.add_argument("--amp", choices=["O0", "O1", "O2"], help="mixed precision level (overrides train.amp)")
    parser.add_argument("--device", choices=["cpu", "gpu"], help="default: gpu when available")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument("--print_config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--print_schema", action="store_true", help="print every config key and exit")
    add_trust_arg(parser)
    args = parser.parse_args(argv)
    if not args.config and not args.print_schema:
        parser.error("--config is required")
    return args


def main(argv: Sequence[str] | None = None) -> Dict[str, Any] | None:
    args = parse_args(argv)
    if args.print_schema:
        print(describe_schema())
        return None
    cfg = load(args)
    if args.print_config:
        print(dump_config(cfg))
        return None
    # --trust-pickle: the --resume checkpoint and model.pretrained are read with plain pickle
    trainer = Trainer(cfg, work_dir=args.work_dir, resume=args.resume, amp=args.amp, device=args.device,
                      progress=not args.no_progress, trust_pickle=args.trust_pickle)
    return trainer.train()


if __name__ == "__main__":
    sys.exit(run_cli(main))
