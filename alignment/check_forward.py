"""Step 1 of the reprod workflow: same weights, same input, eval mode -> same outputs.

float32: every output must meet max|diff| <= 1e-5 max|ref| and mean|diff| <= 1e-6 max(1, mean|ref|).
Every float32 result also records each framework's distance to the float64 run of the same weights
(``distance_to_float64``: per output max|f32 - f64| / max|f64|, torch against torch float64, Paddle against
Paddle float64), so the report shows which framework rounds more.
float64 (``--dtype float64``, and automatically as evidence when a float32 bar is missed): every
hooked intermediate feature map and every output within 1e-9 relative, with Paddle's bilinear
kernel replaced by an exact float64 resize; that kernel's own float64 error is measured and named.

    python -m alignment.check_forward --model danet_r50 --size small [--dtype float64]
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
    build_pair,
    compare_dicts,
    feature_hooks,
    flatten_outputs,
    forward_bar,
    make_batch,
    paddle_dtype,
    relative_bar,
    result_stem,
    run_step,
    save_reprod_pair,
)


def run_forward(case: AlignCase, size: str, dtype: str, seed: int, hooks: bool
                ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    import paddle
    import torch

    from paddle_models.layers.resize import exact_float64_resize

    torch_model, paddle_model = build_pair(case, dtype, seed)
    inputs, _ = make_batch(case, case.input_shapes[size], seed, dtype)
    names = case.hook_modules if hooks else []
    with feature_hooks(torch_model, paddle_model, names) as (tf, pf), torch.no_grad(), \
            paddle.no_grad(), exact_float64_resize(dtype == "float64"), paddle_dtype(dtype):
        torch_out = torch_model(*[torch.from_numpy(x) for x in inputs])
        paddle_out = paddle_model(*[paddle.to_tensor(x) for x in inputs])
    torch_values = flatten_outputs(torch_out)
    paddle_values = flatten_outputs(paddle_out)
    for name in names:
        torch_values.update(flatten_outputs(tf[name], f"feat.{name}"))
        paddle_values.update(flatten_outputs(pf[name], f"feat.{name}"))
    return torch_values, paddle_values


def interpolate_kernel_effect(seed: int) -> str:
    """Paddle's float64 bilinear kernel vs torch's, in isolation (the op named in reports)."""
    import paddle
    import torch

    from paddle_models.layers import resize as paddle_resize
    from torch_ref.layers import resize as torch_resize

    # 8 -> 61: the coordinate scale 7/60 is not representable in float32 (unlike e.g. 9 -> 65).
    x = np.random.RandomState(seed).randn(1, 4, 8, 8)
    ref = torch_resize.bilinear(torch.from_numpy(x), (61, 61)).numpy()
    test = paddle_resize.bilinear(paddle.to_tensor(x), (61, 61)).numpy()
    rel = float(np.abs(ref - test).max() / np.abs(ref).max())
    return (f"paddle.nn.functional.interpolate(bilinear, align_corners=True) computes source "
            f"coordinates in float32 even for float64 input: {rel:.2e} relative vs torch in isolation "
            f"(8x8 -> 61x61); float64 runs use an exact resize in its place")


def float64_evidence(case: AlignCase, args: argparse.Namespace) -> Tuple[List, List[str]]:
    torch_values, paddle_values = run_forward(case, args.size, "float64", args.seed, hooks=True)
    rows = compare_dicts(torch_values, paddle_values, relative_bar(FLOAT64_REL))
    return rows, [interpolate_kernel_effect(args.seed), BN_EPS_NOTE]


def distance_to_float64(case: AlignCase, args: argparse.Namespace, torch32: Dict[str, np.ndarray],
                        paddle32: Dict[str, np.ndarray]) -> Dict[str, object]:
    """Each framework's float32 outputs against its own float64 run (same weights and input)."""
    torch64, paddle64 = run_forward(case, args.size, "float64", args.seed, hooks=False)

    def rel(a: np.ndarray, ref: np.ndarray) -> float:
        ref = np.asarray(ref, np.float64)
        return float(np.abs(np.asarray(a, np.float64) - ref).max() / (np.abs(ref).max() or 1.0))

    per_output = {name: {"torch": rel(torch32[name], torch64[name]), "paddle": rel(paddle32[name], paddle64[name])}
                  for name in torch32 if name in torch64 and name in paddle32 and name in paddle64}
    worst = {side: max((v[side] for v in per_output.values()), default=0.0) for side in ("torch", "paddle")}
    return {"torch": worst["torch"], "paddle": worst["paddle"], "per_output": per_output}


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    stem = result_stem(case.name, args.size, args.dtype)
    hooks = args.dtype == "float64"
    torch_values, paddle_values = run_forward(case, args.size, args.dtype, args.seed, hooks)
    torch_info, paddle_info = save_reprod_pair(args.out, "forward", stem, torch_values, paddle_values)
    if args.dtype == "float64":
        rows = compare_dicts(torch_info, paddle_info, relative_bar(FLOAT64_REL))
        return StepResult("forward", case.name, args.size, args.dtype, rows,
                          notes=[interpolate_kernel_effect(args.seed), BN_EPS_NOTE],
                          shape=list(case.input_shapes[args.size]))
    result = StepResult("forward", case.name, args.size, args.dtype,
                        compare_dicts(torch_info, paddle_info, forward_bar), shape=list(case.input_shapes[args.size]))
    distance = distance_to_float64(case, args, torch_values, paddle_values)
    result.accuracy = {"distance_to_float64": distance}
    if not all(r.passed for r in result.rows):
        result.evidence, result.notes = float64_evidence(case, args)
    return result


def main(argv=None) -> int:
    return run_step("forward", run_case, argv, dtypes=("float32", "float64"))


if __name__ == "__main__":
    raise SystemExit(main())
