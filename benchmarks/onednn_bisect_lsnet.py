"""Where LSNet's oneDNN inference path fails (Paddle 3.3.1): export growing prefixes of the backbone and run
each in a Paddle Inference predictor with oneDNN enabled and ``onednn_placement_pass`` deleted (the
deployment path of ``paddle_models/engine/export.py``).

    python benchmarks/onednn_bisect_lsnet.py [--size 256]

At 256x256 the prefixes up to level 1 run and the level-1 merge with the pooled input fails with
``ShapeError: the shape of scale must equal to [256] ... [16]``; at 64x64 everything runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_utils as common  # noqa: E402  (sets sys.path; must precede paddle)

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


def run_prefix(model, upto: str, size: int) -> str:
    import numpy as np
    import paddle
    from paddle import inference

    shape = [2, 3, size, size]
    net = backbone_prefix(model, upto)
    net.eval()
    folder = tempfile.mkdtemp()
    paddle.jit.save(net, os.path.join(folder, "inference"), input_spec=[paddle.static.InputSpec(shape, "float32")])
    predictor = inference.create_predictor(common.inference_config(folder, 1, "no_placement"))
    x = (np.random.default_rng(0).random(shape) * 255).astype("float32")
    try:
        out = common.run_all_outputs(predictor, [x])[0]
    except Exception as exc:  # the predictor raises C++ error types
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        return "FAIL: " + next((line for line in lines if "Error" in line), lines[-1] if lines else type(exc).__name__)
    with paddle.no_grad():
        ref = net(paddle.to_tensor(x))
        ref = (ref[-1] if isinstance(ref, (list, tuple)) else ref).numpy()
    return f"ok (relative L2 vs dygraph {common.rel_l2(out, ref):.1e})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    common.setup_threads(1, ("paddle",))
    import paddle_models

    model = paddle_models.build_model("lsnet")
    model.eval()
    for upto in PREFIXES:
        print(f"{upto:9s} {args.size}x{args.size}: {run_prefix(model, upto, args.size)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
