"""Where a Paddle Inference predictor spends its time on CPU, per operator, and the slowest plain-kernel
operators side by side with torch at one of the model's shapes.

    python benchmarks/profile_infer.py --models lsnet --threads 1 --out benchmarks/results/profile_infer_t1.json

1. Each model (``bench_utils.CASES``, the speed table's inputs; ``--quick`` for 64x64) is exported with
   dynamic shapes (as ``tools/export.py``) and run by a predictor in ``--mode`` (default ``deploy``: oneDNN
   with ``export.ONEDNN_DELETED_PASSES`` deleted) with Paddle Inference's profiler on, in a child process
   (the profiler prints its report when the predictor is destroyed). Reported per operator: calls and
   milliseconds per run, and the share of the run. ``onednn_op.*`` ran on oneDNN, ``pd_op.*`` on Paddle's
   own CPU kernels.
2. ``--ops``: single operators at one shape (default 2x32x256x256, LSNet's largest level), ten in a row,
   exported and run by a ``deploy`` predictor vs torch eager, interleaved, median of ``--runs``. Two are
   exact rewrites an export could use instead (torch runs the original op): ``prelu_as_where_conv`` =
   where(x > 0, x, 1x1 depthwise conv with the slopes and a zero bias, which puts the product on oneDNN),
   ``expand_multiply`` = the (B, C, 1, 1) gate expanded to x's shape before an equal-shape multiply.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import bench_utils as common  # noqa: E402  (a sibling module; must precede paddle/torch: thread setup)

OPS = ("prelu", "prelu_as_where_conv", "relu", "batch_norm", "broadcast_multiply", "expand_multiply", "concat",
       "depthwise_conv", "depthwise_conv_bias")
EVENT_LINE = re.compile(r"^(?P<name>(?:pd_op|onednn_op)\.\w+)\s+(?P<calls>\d+)\s+(?P<total>[\d.]+)\s")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["lsnet"], help=f"cases: {sorted(common.CASES)}")
    parser.add_argument("--mode", default="deploy", choices=("off", "deploy", "no_placement"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="profiled predictor runs / timed op repetitions")
    parser.add_argument("--quick", action="store_true", help="64x64 model inputs, a 2x32x64x64 op shape")
    parser.add_argument("--ops", nargs="*", default=list(OPS), choices=OPS)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.threads < 1:
        parser.error("--runs and --threads must be >= 1")
    return args


def _profile_worker(name: str, args: argparse.Namespace) -> None:
    """Child process: export, build a profiled predictor, run it; the report goes to stdout at exit."""
    from paddle import inference

    case = common.CASES[name]
    shapes = case.quick_inputs if args.quick else case.inputs
    _, paddle_model = common.build_twins(case)
    paddle_model.eval()
    folder = common.export_for_inference(paddle_model, shapes)
    arrays = common.make_inputs(shapes)

    config = common.inference_config(folder, args.threads, args.mode)
    config.enable_profile()
    predictor = inference.create_predictor(config)
    common.run_all_outputs(predictor, arrays)  # warm-up (graph optimisation, first allocations): in the report
    start = time.perf_counter()
    for _ in range(args.runs):
        common.run_all_outputs(predictor, arrays)
    print(f"@@seconds_per_run {(time.perf_counter() - start) / args.runs}", flush=True)
    del predictor  # prints the report


def parse_report(text: str) -> List[Dict[str, Any]]:
    """The operator rows of the profiler's summary (the first table; per-thread and memory tables follow)."""
    reports = text.split("Profiling Report")
    if len(reports) < 2:
        raise RuntimeError("no Paddle Inference profiling report in the worker's output:\n" + text[-2000:])
    rows = []
    for line in reports[1].splitlines():
        match = EVENT_LINE.match(line.strip())
        if match:
            rows.append({"op": match["name"], "calls": int(match["calls"]), "total_ms": float(match["total"])})
    return rows


def profile_model(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    command = [sys.executable, __file__, "--worker", name, "--mode", args.mode, "--threads", str(args.threads),
               "--runs", str(args.runs)] + (["--quick"] if args.quick else [])
    with tempfile.TemporaryDirectory() as scratch:  # the profiler also writes ./profile.log
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), cwd=scratch)
    text = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"profile worker for {name} failed (exit {done.returncode}):\n{text[-3000:]}")
    rows = parse_report(text)
    # the profiled predictor made 1 warm-up + args.runs runs (the warm-up is in the report)
    per_run = 1 + args.runs
    total = sum(r["total_ms"] for r in rows)
    for r in rows:
        r["ms_per_run"] = r["total_ms"] / per_run
        r["calls_per_run"] = r["calls"] / per_run
        r["share"] = r["total_ms"] / total if total else 0.0
    rows.sort(key=lambda r: -r["total_ms"])
    seconds = float(re.search(r"@@seconds_per_run (\S+)", text).group(1))
    onednn = sum(r["share"] for r in rows if r["op"].startswith("onednn_op."))
    return {"mode": args.mode, "seconds_per_run_profiled": seconds, "onednn_share": onednn, "ops": rows}


def _op_layers(op: str, channels: int):
    """(paddle layer, torch function) computing ``op`` ten times in a row on a (B, C, H, W) tensor."""
    import paddle
    import paddle.nn.functional as F
    import torch

    half = channels // 2

    class Repeat(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            constant = paddle.nn.initializer.Constant
            self.slope = self.create_parameter([channels], default_initializer=constant(0.25))
            self.gate = self.create_parameter([1, channels, 1, 1], default_initializer=constant(0.5))
            self.conv = paddle.nn.Conv2D(channels, channels, 3, padding=1, groups=channels,
                                         bias_attr=None if op == "depthwise_conv_bias" else False)
            self.bn = paddle.nn.BatchNorm2D(channels)
            self.zero_bias = self.create_parameter([channels], default_initializer=constant(0.0))

        def one(self, x):
            if op == "prelu":
                return F.prelu(x, self.slope)
            if op == "prelu_as_where_conv":
                return paddle.where(x > 0, x, F.conv2d(x, self.slope.reshape([-1, 1, 1, 1]), self.zero_bias,
                                                       groups=channels))
            if op == "relu":
                return F.relu(x)
            if op == "batch_norm":
                return self.bn(x)
            if op == "broadcast_multiply":
                return x * self.gate
            if op == "expand_multiply":
                return x * paddle.expand(self.gate, paddle.shape(x))
            if op == "concat":
                return paddle.concat([x[:, :half], x[:, half:]], 1)
            return self.conv(x)

        def forward(self, x0):
            for _ in range(10):
                x0 = self.one(x0)
            return x0

    layer = Repeat()
    t_conv = torch.nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=op == "depthwise_conv_bias")
    t_conv.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in layer.conv.state_dict().items()})
    t_bn = torch.nn.BatchNorm2d(channels, eps=1e-5).eval()
    t_slope, t_gate = torch.full([channels], 0.25), torch.full([1, channels, 1, 1], 0.5)
    torch_one = {
        "prelu": lambda x: torch.nn.functional.prelu(x, t_slope), "relu": torch.relu, "batch_norm": t_bn,
        "prelu_as_where_conv": lambda x: torch.nn.functional.prelu(x, t_slope),
        "broadcast_multiply": lambda x: x * t_gate, "expand_multiply": lambda x: x * t_gate,
        "depthwise_conv": t_conv.eval(),
        "depthwise_conv_bias": t_conv.eval(), "concat": lambda x: torch.cat([x[:, :half], x[:, half:]], 1)}[op]

    def torch_repeat(x):
        for _ in range(10):
            x = torch_one(x)
        return x

    return layer, torch_repeat


def time_ops(args: argparse.Namespace) -> Dict[str, Any]:
    import numpy as np
    import paddle
    import torch
    from paddle import inference

    shape = (2, 32, 64, 64) if args.quick else (2, 32, 256, 256)
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    results: Dict[str, Any] = {"shape": list(shape), "repeats_per_run": 10, "ops": {}}
    for op in args.ops:
        layer, torch_fn = _op_layers(op, shape[1])
        layer.eval()
        folder = tempfile.mkdtemp(prefix=f"op_{op}_")
        paddle.jit.save(layer, os.path.join(folder, "inference"),
                        input_spec=[paddle.static.InputSpec([None, shape[1], None, None], "float32", "x0")])
        predictor = inference.create_predictor(common.inference_config(folder, args.threads, "deploy"))
        t_x = torch.from_numpy(x)
        with torch.no_grad():
            reference = torch_fn(t_x).numpy()
        out = common.run_all_outputs(predictor, [x])[0]
        samples: Dict[str, List[float]] = {"paddle_inference": [], "torch": []}
        for _ in range(args.runs + 1):  # the first round is a warm-up
            start = time.perf_counter()
            common.run_all_outputs(predictor, [x])
            samples["paddle_inference"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                torch_fn(t_x)
            samples["torch"].append(time.perf_counter() - start)
        ms = {k: statistics.median(v[1:]) * 100 for k, v in samples.items()}  # per single op (10 per run)
        results["ops"][op] = {"ms_per_op": ms, "ratio": ms["paddle_inference"] / ms["torch"],
                              "rel_l2_vs_torch": common.rel_l2(out, reference)}
        print(f"{op:22s} Paddle Inference {ms['paddle_inference']:7.2f} ms  torch {ms['torch']:6.2f} ms  "
              f"({results['ops'][op]['ratio']:.1f}x)", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.setup_threads(args.threads)
    if args.worker:
        _profile_worker(args.worker, args)
        return 0
    env = common.environment(args.threads)
    print(f"# {env}", flush=True)
    payload: Dict[str, Any] = {"environment": env, "args": vars(args), "models": {}}
    for name in args.models:
        if name not in common.CASES:
            raise SystemExit(f"unknown case {name!r}; known: {sorted(common.CASES)}")
        result = profile_model(name, args)
        payload["models"][name] = result
        print(f"\n{name} ({args.mode}): {result['seconds_per_run_profiled']:.3f} s per run under the profiler, "
              f"{100 * result['onednn_share']:.0f} % of op time in oneDNN kernels")
        for row in result["ops"][:12]:
            print(f"  {row['op']:34s} {row['calls_per_run']:6.0f} calls {row['ms_per_run']:9.1f} ms "
                  f"{100 * row['share']:5.1f} %")
    if args.ops:
        print(f"\nsingle operators, 10 in a row, {args.threads} thread(s):", flush=True)
        payload["single_ops"] = time_ops(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
