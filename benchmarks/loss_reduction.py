"""Paddle losses with float64-accumulated reductions vs Paddle's own float32 ones: error and time.

The DASNet contrastive loss (official and DASNet-V2 cosine / batch weights) and LSNet's hybrid loss
(official and standard Dice) at the paper's change-detection size (batch 4, 256 x 256), forward +
backward, in Paddle float32 with the package's reductions (``paddle_models/losses/reduction.py``) and
with those replaced by Paddle's plain ``mean`` / ``sum`` (what the losses used before). Error: the
loss's relative distance from the same loss in float64 on the same inputs; torch float32 is shown next
to it. Times are medians of ``--runs`` interleaved runs at each thread count, in one process.

    python benchmarks/loss_reduction.py [--runs 15] [--threads 1 2] [--json benchmarks/results/loss_reduction.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import ROOT, setup_threads  # noqa: E402  (sets the thread env before the frameworks load)

sys.path.insert(0, str(ROOT))

# (loss name, build_loss kwargs, model outputs: three (t0, t1) embedding pairs of this shape (DASNet-R50:
# 512 channels at 1/8 of the input; DASNet-V2: 32 at full size), or None: LSNet's (4, 2, 256, 256) logits)
LOSSES = [
    ("dasnet_contrastive", {}, (4, 512, 32, 32)),
    ("dasnet_contrastive", {"variant": "cosine", "class_weights": "batch"}, (4, 32, 256, 256)),
    ("lsnet_hybrid", {}, None),
    ("lsnet_hybrid", {"dice": "standard"}, None),
]


def make_inputs(embedding_shape, seed: int = 0):
    import numpy as np

    rng = np.random.RandomState(seed)
    labels = (rng.rand(4, 256, 256) < 0.15).astype("int64")
    if embedding_shape:
        pairs = [tuple(rng.randn(*embedding_shape).astype("float32") for _ in range(2)) for _ in range(3)]
        return pairs, labels
    return rng.randn(4, 2, 256, 256).astype("float32") * 4, labels


def _to(framework: str, arrays, dtype: str):
    import paddle
    import torch

    if isinstance(arrays, (list, tuple)):
        return type(arrays)(_to(framework, a, dtype) for a in arrays)
    a = arrays.astype(dtype)
    if framework == "torch":
        return torch.tensor(a, requires_grad=True)
    return paddle.to_tensor(a, stop_gradient=False)


@contextlib.contextmanager
def plain_reductions() -> Iterator[None]:
    """The losses with Paddle's own float32 mean / sum in place of the float64-accumulated ones."""
    from paddle_models.losses import dasnet_contrastive, lsnet_hybrid

    def plain_sum(x, axis=None, keepdim=False):
        return x.sum(axis=axis, keepdim=keepdim)

    names = ("accurate_sum", "accurate_mean")
    saved = [(m, n, getattr(m, n)) for m in (dasnet_contrastive, lsnet_hybrid) for n in names if hasattr(m, n)]
    for module, name, _ in saved:
        setattr(module, name, plain_sum if name == "accurate_sum" else (lambda x: x.mean()))
    try:
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


def loss_value(framework: str, name: str, kwargs: Dict, outputs, labels, dtype: str = "float32") -> float:
    import paddle
    import torch

    import paddle_models
    import torch_ref

    if framework == "torch":
        loss = torch_ref.build_loss(name, **kwargs)(_to("torch", outputs, dtype), torch.from_numpy(labels))
        loss.backward()
        return float(loss.item())
    previous = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        loss = paddle_models.build_loss(name, **kwargs)(_to("paddle", outputs, dtype), paddle.to_tensor(labels))
        loss.backward()
    finally:
        paddle.set_default_dtype(previous)
    return float(loss)


def seconds(fn, *fn_args) -> float:
    start = time.perf_counter()
    fn(*fn_args)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    setup_threads(args.threads[0])
    import paddle

    rows = []
    for name, kwargs, shape in LOSSES:
        outputs, labels = make_inputs(shape)
        truth = loss_value("torch", name, kwargs, outputs, labels, "float64")
        row = {"loss": name, "kwargs": kwargs,
               "torch_rel": abs(loss_value("torch", name, kwargs, outputs, labels) - truth) / abs(truth),
               "paddle_rel": abs(loss_value("paddle", name, kwargs, outputs, labels) - truth) / abs(truth)}
        with plain_reductions():
            row["paddle_plain_rel"] = abs(loss_value("paddle", name, kwargs, outputs, labels) - truth) / abs(truth)
        for threads in args.threads:
            setup_threads(threads)
            paddle.set_device("cpu")
            ours, plain = [], []
            for _ in range(args.runs):  # interleaved: the VM's noise hits both alike
                ours.append(seconds(loss_value, "paddle", name, kwargs, outputs, labels))
                with plain_reductions():
                    plain.append(seconds(loss_value, "paddle", name, kwargs, outputs, labels))
            row[f"ms_t{threads}"] = 1e3 * statistics.median(ours)
            row[f"plain_ms_t{threads}"] = 1e3 * statistics.median(plain)
        rows.append(row)
    header = ["loss", "torch32 vs f64", "paddle32 (plain) vs f64", "paddle32 (ours) vs f64"]
    header += [f"{t} thr: ours / plain ms" for t in args.threads]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        cells = [f"{r['loss']} {r['kwargs'] or ''}".strip(), f"{r['torch_rel']:.1e}", f"{r['paddle_plain_rel']:.1e}",
                 f"{r['paddle_rel']:.1e}"]
        cells += [f"{r[f'ms_t{t}']:.1f} / {r[f'plain_ms_t{t}']:.1f} ({r[f'ms_t{t}'] / r[f'plain_ms_t{t}']:.2f}x)"
                  for t in args.threads]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
