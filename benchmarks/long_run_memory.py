"""Resident memory over a long training run: is there unbounded growth? (GitHub issue 8)

    nice python benchmarks/long_run_memory.py                       # 2000 iterations, 1 thread
    python benchmarks/long_run_memory.py --iters 300 --warmup 100   # quick look

The run goes through the real ``Trainer.train()`` loop (data loading with DANetTrain augmentation,
forward, loss, NaN/Inf checks, backward, momentum step, poly schedule, log lines, ``history.jsonl``,
VisualDL scalars, an evaluation and an atomic checkpoint every ``--every_eval`` iterations) on a
synthetic Cityscapes written to a temporary folder, with the tiny test model of
``tests/pipeline_helpers.py`` (conv-BN-ReLU + 3 heads): the model is small so that 2000 iterations take
minutes on 2 shared cores, and the loop, not the model, is what is measured.

RSS (psutil) is sampled every ``--sample_every`` iterations. Reported: the RSS at the end of warm-up
(iteration ``--warmup``), at the end, the growth between them in % (the issue's bound: 5 %), the largest
sample after warm-up, and the least-squares slope after warm-up in MB per 1000 iterations. Results go
to ``benchmarks/results/long_run_memory.json`` (``--out``), with the allocator and thread count.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import bench_utils as common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _pipeline_helpers() -> Any:
    """tests/pipeline_helpers.py (registers the tiny test model), loaded from its file."""
    spec = importlib.util.spec_from_file_location("pipeline_helpers", ROOT / "tests" / "pipeline_helpers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pipeline_helpers"] = module
    spec.loader.exec_module(module)
    return module


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200, help="iterations before the reference sample")
    parser.add_argument("--sample_every", type=int, default=50)
    parser.add_argument("--every_eval", type=int, default=500, help="evaluation + checkpoint interval")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "long_run_memory.json"))
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.iters:
        parser.error("--warmup must be between 0 and --iters")
    return args


def _slope(points: List[List[float]]) -> float:
    """Least-squares slope of RSS (MB) against iterations, in MB per 1000 iterations."""
    import numpy as np

    x = np.array([p[0] for p in points], np.float64)
    y = np.array([p[1] for p in points], np.float64)
    if len(x) < 2:
        return 0.0
    return float(np.polyfit(x, y, 1)[0] * 1000.0)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    common.setup_threads(args.threads)
    import psutil

    from paddle_models.engine.run_config import load_run_config
    from paddle_models.engine.trainer import Trainer
    from rsrepro.fileio import atomic_write_json

    helpers = _pipeline_helpers()
    make_cityscapes, seg_config, write_config = helpers.make_cityscapes, helpers.seg_config, helpers.write_config
    process = psutil.Process()
    scratch = tempfile.mkdtemp(prefix="long_run_memory_")
    try:
        data = make_cityscapes(os.path.join(scratch, "data"), num_train=16, num_val=2, size=(64, 128))
        cfg = seg_config(data, iters=args.iters, batch_size=args.batch_size, log_interval=args.sample_every,
                         eval_interval=args.every_eval, save_interval=args.every_eval, keep_checkpoints=2)
        cfg["dataset"]["train"]["transforms"][0].update(base_size=args.crop, crop_size=args.crop)
        path = write_config(os.path.join(scratch, "long_run.yml"), cfg)
        trainer = Trainer(load_run_config(path), os.path.join(scratch, "run"), progress=False)
        samples: List[List[float]] = []
        step = trainer.train_step

        def sampled_step(batch):
            values = step(batch)
            done = trainer.iteration + 1  # train() increments the counter after the step
            if done % args.sample_every == 0 or done == args.warmup:
                samples.append([done, process.memory_info().rss / 2**20])
            return values

        trainer.train_step = sampled_step
        start = time.perf_counter()
        summary = trainer.train()
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    at_warmup = next(rss for it, rss in samples if it == args.warmup)
    after = [p for p in samples if p[0] >= args.warmup]
    final = samples[-1][1]
    result = {
        "benchmark": "long_run_memory",
        "what": "Trainer.train() on the tiny test model, synthetic Cityscapes, RSS every "
                f"{args.sample_every} iterations",
        "iterations": summary["iteration"],
        "warmup_iterations": args.warmup,
        "batch_size": args.batch_size,
        "crop": args.crop,
        "eval_and_checkpoint_every": args.every_eval,
        "warmup_rss_mb": round(at_warmup, 2),
        "final_rss_mb": round(final, 2),
        "growth_pct": round(100.0 * (final - at_warmup) / at_warmup, 3),
        "max_rss_after_warmup_mb": round(max(p[1] for p in after), 2),
        "slope_mb_per_1000_iters": round(_slope(after), 3),
        "bound_pct": 5.0,
        "seconds": round(seconds, 1),
        "samples": [[int(i), round(r, 2)] for i, r in samples],
        "environment": common.environment(args.threads),
    }
    result["within_bound"] = abs(result["growth_pct"]) <= result["bound_pct"]
    atomic_write_json(args.out, result)
    return result


def main(argv: List[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples",)}, indent=2))
    print(f"RSS {result['warmup_rss_mb']:.1f} MB at iteration {args.warmup} -> {result['final_rss_mb']:.1f} MB at "
          f"{result['iterations']}: {result['growth_pct']:+.2f} % (bound 5 %); written to {args.out}")
    return 0 if result["within_bound"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
