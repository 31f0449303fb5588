"""Step 6: several optimizer steps in eval mode on the same data -> same losses and gradients.

5 steps of the case's optimizer (Momentum for DANet, with its parameter groups and weight decay)
at a constant lr, in eval mode (BN running statistics, no dropout), on one fixed batch.
float32 bars: loss relative diff <= 1e-5 at every step; every parameter's gradient
max|diff| <= 1e-4 max|grad_ref|. float64 (``--dtype float64``, and as evidence for a float32 miss):
both within 1e-9 relative.

    python -m alignment.check_backward --model danet_r50 [--dtype float64] [--steps 5]
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Tuple

import numpy as np

from .cases import AlignCase
from .harness import (
    BN_EPS_NOTE,
    FLOAT64_REL,
    StepResult,
    annotate_with_truth,
    build_pair,
    make_batch,
    make_parser,
    paddle_dtype,
    relative_bar,
    result_stem,
    run_step,
    save_reprod_pair,
)
from .stepping import FLOAT32_COEFFICIENTS_NOTE, TwinTrainer, step_rows


def run_backward(case: AlignCase, args: argparse.Namespace, dtype: str, shape: Tuple[int, ...] | None = None
                 ) -> Tuple[List, Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    from paddle_models.layers.resize import exact_float64_resize

    torch_model, paddle_model = build_pair(case, dtype, args.seed)
    inputs, labels = make_batch(case, shape or case.input_shapes[args.size], args.seed, dtype)
    constant = {"type": "constant", "base_lr": case.backward_lr}
    if dtype == "float64":
        loss_bar = grad_bar = relative_bar(FLOAT64_REL)
    else:
        loss_bar, grad_bar = relative_bar(1e-5), relative_bar(1e-4)
    rows: List = []
    torch_all: Dict[str, np.ndarray] = {}
    paddle_all: Dict[str, np.ndarray] = {}
    with exact_float64_resize(dtype == "float64"), paddle_dtype(dtype):
        # Built under the dtype: Paddle keeps the learning rate as a tensor of the default dtype.
        trainer = TwinTrainer(case, torch_model, paddle_model, case.optimizer, constant, args.steps,
                              float32_coeffs=dtype == "float64")
        for step in range(args.steps):
            torch_values, paddle_values = trainer.step(inputs, labels)
            stem = result_stem(f"{case.name}_step{step}", args.size, dtype)
            torch_info, paddle_info = save_reprod_pair(args.out, "backward", stem, torch_values, paddle_values)
            rows += step_rows(step, torch_info, paddle_info, loss_bar, grad_bar, case.zero_grad_params)
            torch_all.update({f"step{step}.{k}": v for k, v in torch_info.items()})
            paddle_all.update({f"step{step}.{k}": v for k, v in paddle_info.items()})
    return rows, torch_all, paddle_all


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    rows, torch32, paddle32 = run_backward(case, args, args.dtype)
    result = StepResult("backward", case.name, args.size, args.dtype, rows, shape=list(case.input_shapes[args.size]))
    if args.dtype == "float32" and not all(r.passed for r in result.rows):
        shape = case.evidence_shapes.get(args.size)
        if shape is None or tuple(shape) == tuple(case.input_shapes[args.size]):
            result.evidence, truth, _ = run_backward(case, args, "float64")
            result.accuracy = annotate_with_truth(result.rows, lambda name: name, torch32, paddle32, truth)
        else:  # float64 at this size would take over 30 min: the same steps at a smaller batch shape
            result.evidence, _, _ = run_backward(case, args, "float64", shape)
            result.evidence_shape = list(shape)
            result.notes.append(f"float64 evidence at {list(shape)} (float32 at {list(case.input_shapes[args.size])}: "
                                "float64 at that size takes over 30 min on 2 CPU cores)")
    if args.dtype == "float64" or result.evidence:
        result.notes += ["float64 runs use an exact resize in place of Paddle's bilinear kernel "
                         "(see check_forward)", FLOAT32_COEFFICIENTS_NOTE, BN_EPS_NOTE]
    return result


def main(argv=None) -> int:
    parser = make_parser("backward", ("float32", "float64"))
    parser.add_argument("--steps", type=int, default=5)
    return run_step("backward", run_case, argv, parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())
