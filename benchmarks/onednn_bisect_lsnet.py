"""Where and why LSNet's oneDNN inference path failed (Paddle 3.3.1): export growing prefixes of the
backbone at a FIXED input shape and run each in Paddle Inference predictors with oneDNN enabled and
(a) only ``onednn_placement_pass`` deleted (``no_placement``), (b) the package's deployment passes
``export.ONEDNN_DELETED_PASSES`` deleted (``deploy``).

    python benchmarks/onednn_bisect_lsnet.py [--size 256] [--modes no_placement deploy] [--thread-state]

At 256x256 ``no_placement`` runs the prefixes up to level 1 and fails at the level-1 merge with the
pooled input: ``ShapeError: the shape of scale must equal to [256] ... [16]``. Cause (found with
``config.switch_ir_debug``): with the sizes known, ``transfer_layout_pass`` rewrites the input's
3x3/2 average pooling to NHWC (transpose, pool2d NHWC, transpose back); one op with data_format NHWC makes
Paddle's oneDNN runtime treat the model as NHWC, so ``onednn_to_paddle_layout`` after the first oneDNN
convolution returns NHWC data under NCHW shapes and the next batch_norm sees 256 "channels". At 64x64 the
pass leaves the pooling alone, and with dynamic shapes (``tools/export.py``'s default) it cannot decide,
so those run. ``deploy`` (which also deletes ``transfer_layout_pass``) runs every prefix and the whole
backbone, equal to dygraph.

``--thread-state``: that layout state belongs to the thread, not the predictor. A deploy predictor that
ran fine fails on its next run after a ``no_placement`` predictor (with the NHWC pooling) ran in the same
thread; a newly created deploy predictor runs. The package's passes insert no NHWC op, but a process that
also runs someone else's predictor with one should keep them in separate threads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Sequence

import bench_utils as common  # noqa: E402  (a sibling module; must precede paddle: thread setup)

PREFIXES = ("stem", "x0", "level1", "x1", "backbone")


def backbone_prefix(model, upto: str):
    import paddle

    class Prefix(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = model.backbone

        def forward(self, x):
            b = self.backbone
            if upto == "backbone":
                return b(x)[-1]
            inp_half = b.inject_2x(x)
            stem = x
            for block in b.stem:
                stem = block(stem)
            if upto == "stem":
                return stem
            x0 = b.norm_prelu_0(paddle.concat([stem, x], 1))
            if upto == "x0":
                return x0
            y, first = b._run_stage(b.level1, x0)
            if upto == "level1":
                return y
            return b.norm_prelu_1(paddle.concat([y, first, inp_half], 1))

    return Prefix()


def _failure(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return "FAIL: " + next((line for line in lines if "Error" in line), lines[-1] if lines else type(exc).__name__)


def _try_run(predictor, inputs) -> str:
    try:
        common.run_all_outputs(predictor, inputs)
    except Exception as exc:  # the predictor raises C++ error types
        return _failure(exc)
    return "ok"


def thread_state_leak(model, size: int) -> list:
    """Paddle's oneDNN layout state is per thread, not per predictor: a predictor that ran fine fails on
    its next run once another predictor with an NHWC op ran in the same thread; a new one still works."""
    from paddle import inference

    shapes = [[1, 3, size, size]] * 2
    folder = common.export_for_inference(model, shapes, dynamic=False)
    inputs = common.make_inputs(shapes)
    first = inference.create_predictor(common.inference_config(folder, 1, "deploy"))
    steps = [("deploy predictor A, run 1", _try_run(first, inputs))]
    other = inference.create_predictor(common.inference_config(folder, 1, "no_placement"))
    steps.append(("no_placement predictor B (NHWC pooling), run 1", _try_run(other, inputs)))
    steps.append(("deploy predictor A, run 2", _try_run(first, inputs)))
    fresh = inference.create_predictor(common.inference_config(folder, 1, "deploy"))
    steps.append(("deploy predictor C (new), run 1", _try_run(fresh, inputs)))
    return steps


def run_prefix(model, upto: str, size: int, mode: str) -> str:
    import numpy as np
    import paddle
    from paddle import inference

    shape = [2, 3, size, size]
    net = backbone_prefix(model, upto)
    net.eval()
    folder = tempfile.mkdtemp()
    paddle.jit.save(net, os.path.join(folder, "inference"), input_spec=[paddle.static.InputSpec(shape, "float32")])
    predictor = inference.create_predictor(common.inference_config(folder, 1, mode))
    x = (np.random.default_rng(0).random(shape) * 255).astype("float32")
    try:
        out = common.run_all_outputs(predictor, [x])[0]
    except Exception as exc:  # the predictor raises C++ error types
        return _failure(exc)
    with paddle.no_grad():
        ref = net(paddle.to_tensor(x))
        ref = (ref[-1] if isinstance(ref, (list, tuple)) else ref).numpy()
    return f"ok (relative L2 vs dygraph {common.rel_l2(out, ref):.1e})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--thread-state", action="store_true",
                        help="also show that one predictor's NHWC run breaks another predictor in the same thread")
    parser.add_argument("--modes", nargs="+", default=["no_placement", "deploy"], choices=["no_placement", "deploy"])
    args = parser.parse_args(argv)
    common.setup_threads(1, ("paddle",))
    import paddle_models

    model = paddle_models.build_model("lsnet")
    model.eval()
    for mode in args.modes:  # a fresh predictor per prefix: a failed NHWC run must not leak into the next
        for upto in PREFIXES:
            print(f"{mode:12s} {upto:9s} {args.size}x{args.size}: {run_prefix(model, upto, args.size, mode)}",
                  flush=True)
    if args.thread_state:
        print(f"whole LSNet, fixed {args.size}x{args.size} pair, predictors in one thread:")
        for step, outcome in thread_state_leak(model, args.size):
            print(f"  {step}: {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
