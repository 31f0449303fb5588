"""Step 8 (short form): 20 iterations of real training, train mode, both frameworks.

Starts like a fine-tuning run: the trained-statistics backbone of ``randomize_reference`` under a
freshly initialised classifier. Train mode (BN batch statistics) with dropout disabled (random
masks cannot be aligned), the case's real optimizer (DANet: Momentum 0.9, wd 1e-4, head x10) and
schedule (poly over the run), a new batch every iteration (same batches on both sides).
Bar: loss relative diff <= 1e-3 at every iteration. The final weights' relative difference is
reported for information. A float32 miss gets the same run in float64 as evidence.

    python -m alignment.check_train --model danet_r50 [--iters 20]
"""

from __future__ import annotations

import argparse
import sys
from typing import Tuple

import numpy as np

from .cases import AlignCase
from .harness import (
    BN_EPS_NOTE,
    FLOAT64_REL,
    Row,
    StepResult,
    annotate_with_truth,
    build_pair,
    disable_dropout,
    make_batch,
    paddle_dtype,
    relative_bar,
    result_stem,
    run_step,
    save_reprod_pair,
)
from .stepping import FLOAT32_COEFFICIENTS_NOTE, TwinTrainer

TRAIN_REL = 1e-3


def run_train(case: AlignCase, args: argparse.Namespace, dtype: str, shape: Tuple[int, ...] | None = None):
    from paddle_models.layers.resize import exact_float64_resize

    torch_model, paddle_model = build_pair(case, dtype, args.seed, scale_logits=False)
    torch_model.train()
    paddle_model.train()
    dropouts = disable_dropout(torch_model, paddle_model)
    shape = shape or case.train_shapes.get(args.size, case.input_shapes[args.size])
    torch_losses, paddle_losses = [], []
    with exact_float64_resize(dtype == "float64"), paddle_dtype(dtype):
        trainer = TwinTrainer(case, torch_model, paddle_model, case.optimizer, case.lr_scheduler,
                              args.iters, float32_coeffs=dtype == "float64")
        for it in range(args.iters):
            inputs, labels = make_batch(case, shape, args.seed + 1000 + it, dtype)
            torch_values, paddle_values = trainer.step(inputs, labels)
            torch_losses.append(float(torch_values["loss"]))
            paddle_losses.append(float(paddle_values["loss"]))
    torch_w, paddle_w = trainer.weights()
    stem = result_stem(case.name, args.size, dtype)
    torch_info, paddle_info = save_reprod_pair(
        args.out, "train", stem, {"loss": np.array(torch_losses)}, {"loss": np.array(paddle_losses)})
    bar = relative_bar(TRAIN_REL if dtype == "float32" else FLOAT64_REL)
    rows = [bar(f"iter{i}.loss", torch_info["loss"][i], paddle_info["loss"][i]) for i in range(args.iters)]
    worst_w = max(float(np.abs(torch_w[k] - paddle_w[k]).max() / (np.abs(torch_w[k]).max() or 1.0))
                  for k in torch_w)
    notes = [f"{dtype}: {dropouts} dropout layers disabled; batch shape {shape}; losses torch "
             f"{torch_losses[0]:.4f} -> {torch_losses[-1]:.4f}, paddle {paddle_losses[0]:.4f} -> "
             f"{paddle_losses[-1]:.4f}; final weights: worst per-parameter relative max|diff| {worst_w:.2e}"]
    per_iter = [{f"iter{i}.loss": np.asarray(v) for i, v in enumerate(losses)}
                for losses in (torch_losses, paddle_losses)]
    return rows, notes, per_iter[0], per_iter[1]


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    rows, notes, torch32, paddle32 = run_train(case, args, "float32")
    full = case.train_shapes.get(args.size, case.input_shapes[args.size])
    result = StepResult("train", case.name, args.size, "float32", rows, notes=notes, shape=list(full))
    if not all(r.passed for r in rows):
        shape = case.evidence_shapes.get(args.size)
        if shape is None or tuple(shape) == tuple(full):
            result.evidence, more, truth, _ = run_train(case, args, "float64")
            result.accuracy = annotate_with_truth(result.rows, lambda name: name, torch32, paddle32, truth)
        else:  # float64 at this size would take over 30 min: the same run at a smaller batch shape
            result.evidence, more, _, _ = run_train(case, args, "float64", shape)
            result.evidence_shape = list(shape)
            more.append(f"float64 evidence at {list(shape)} (float32 at {list(full)}: float64 at that size would "
                        "take over 30 min on 2 CPU cores)")
        result.notes += more + [FLOAT32_COEFFICIENTS_NOTE, BN_EPS_NOTE,
                                "a float32 trajectory that drifts while float64 stays within 1e-9 is "
                                "rounding amplified by training (see alignment/diagnose_relu.py)"]
    return result


def main(argv=None) -> int:
    from .harness import make_parser

    parser = make_parser("train")
    parser.add_argument("--iters", type=int, default=None, help="default 20 (size small), 10 (size full)")
    args, _ = parser.parse_known_args(argv)
    if args.iters is None:
        argv = list(argv if argv is not None else sys.argv[1:]) + ["--iters", "10" if args.size == "full" else "20"]
    return run_step("train", run_case, argv, parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["run_case", "Row"]
