"""Export a trained model to a static Paddle inference model (paddle.jit.save) and check it.

    python tools/export.py --config configs/danet/danet_r50_synthetic_demo.yml --weights best.pdparams \
        --out output/export [--input_shape -1 3 -1 -1] [--output logits|probability|label] [--check 64 128]

Writes ``inference.json`` + ``inference.pdiparams`` (Paddle 3.x PIR) and ``deploy.yml``. With ``--check H W``
the exported model is run (``paddle.jit.load`` and Paddle Inference with and without oneDNN) on a random
input of that size and compared with dygraph; the report goes to ``export_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools._cli import add_config_args, add_trust_arg, load, run_cli  # noqa: E402


def export(cfg: Dict[str, Any], weights: str | None, out_dir: str, input_shape: Sequence[int | None] | None = None,
           output: str | None = None, check_size: Sequence[int] | None = None,
           cpu_threads: int | None = None, trust_pickle: bool = False) -> Dict[str, Any]:
    """``trust_pickle``: read ``weights`` (and ``model.pretrained``) with plain pickle (``common.safe_load``)."""
    import numpy as np

    from common.fileio import atomic_write_json
    from common.safe_load import trusted_pickle
    from paddle_models.engine.builder import DATASETS, build_model
    from paddle_models.engine.export import check_export, export_model
    from paddle_models.engine.tasks import build_task
    from paddle_models.engine.trainer import select_device
    from tools._cli import load_weights

    select_device("cpu")
    task = build_task(cfg)
    with trusted_pickle(trust_pickle or None):
        model = build_model(cfg)
        if weights:
            load_weights(model, weights)
    model.eval()
    shape = list(input_shape) if input_shape is not None else list(cfg["export"]["input_shape"])
    shape = [None if d is None or int(d) < 0 else int(d) for d in shape]
    output = output or cfg["export"]["output"]
    section = cfg["dataset"].get("val") or cfg["dataset"].get("train")
    dataset_meta = DATASETS.get(section["type"]) if section else None
    result = export_model(model, task, out_dir, shape, output, cfg, dataset_meta)
    files = [os.path.basename(result["model_file"]), os.path.basename(result["params_file"]), "deploy.yml"]
    print(f"exported to {out_dir}: {', '.join(files)}")
    if check_size:
        h, w = int(check_size[0]), int(check_size[1])
        batch = shape[0] or 1
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal((batch, shape[1] or 3, h, w)).astype(np.float32) for _ in range(task.num_inputs)]
        report = check_export(model, task, out_dir, inputs, output, cpu_threads=cpu_threads)
        atomic_write_json(os.path.join(out_dir, "export_check.json"), report)
        print(json.dumps(report, indent=1, default=str))
        result["check"] = report
    return result


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
    return export(cfg, args.weights, args.out, args.input_shape, args.output, args.check, args.cpu_threads,
                  trust_pickle=args.trust_pickle)


if __name__ == "__main__":
    sys.exit(run_cli(main))
