"""What limits Paddle's dygraph training step on CPU: where a step's time goes, and the conv kernels
side by side with torch.

    python benchmarks/profile_step.py --models danet_r50 lsnet --threads 1 --out benchmarks/results/profile_step.json

1. For each model (``bench_utils.CASES``, the ``--quick`` input size by default, ``--full`` for the speed
   table's), one Paddle training step (train mode, surrogate loss, backward, momentum step) under
   ``paddle.profiler``: CPU time per operator kind, grouped into convolution forward / backward, and the
   rest, as shares of the step.
2. The convolution shapes that dominate these networks (3x3 and 1x1, 64-512 channels), forward and
   forward+backward, in both frameworks on the same thread count, interleaved, median of ``--runs``.
   The ratio Paddle / torch there is the floor for a conv-bound training step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import bench_utils as common  # noqa: E402  (a sibling module; must precede paddle/torch: thread setup)

# (batch, in, out, kernel, size): the 3x3 and 1x1 convolutions of ResNet stages at a 256-512 crop
CONV_SHAPES = [(2, 64, 64, 3, 128), (2, 128, 128, 3, 64), (2, 256, 256, 3, 64), (2, 512, 512, 3, 32),
               (2, 256, 1024, 1, 64), (2, 1024, 256, 1, 64)]


def _group(name: str) -> str:
    lowered = name.lower()
    if "conv2d" in lowered and "grad" in lowered:
        return "conv backward"
    if "conv2d" in lowered:
        return "conv forward"
    if "grad" in lowered:
        return "other backward"
    if "momentum" in lowered or "adam" in lowered:
        return "optimizer"
    return "other forward"


def profile_model(name: str, full: bool, threads: int) -> Dict[str, Any]:
    import numpy as np
    import paddle
    import paddle.profiler as profiler

    case = common.CASES[name]
    model = __import__("paddle_models").build_model(case.model, **case.kwargs)
    model.train()
    shapes = case.inputs if full else case.quick_inputs
    rng = np.random.default_rng(0)
    inputs = [paddle.to_tensor(rng.standard_normal(s).astype("float32")) for s in shapes]
    optimizer = paddle.optimizer.Momentum(1e-9, momentum=0.9, parameters=model.parameters())

    def step() -> None:
        loss = common.surrogate_loss(model(*inputs))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    step()  # warm-up (kernel selection, allocator)
    start = time.perf_counter()
    step()
    plain_seconds = time.perf_counter() - start
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    step()
    prof.step()
    prof.stop()
    totals: Dict[str, float] = {}
    for event_name, seconds in _operator_totals(prof).items():
        key = _group(event_name)
        totals[key] = totals.get(key, 0.0) + seconds
    profiled = sum(totals.values()) or 1.0
    return {"inputs": [list(s) for s in shapes], "step_seconds": plain_seconds,
            "operator_seconds": totals, "shares": {k: v / profiled for k, v in totals.items()}}


def _operator_totals(prof: Any) -> Dict[str, float]:
    """Operator name -> CPU seconds, from the profiler's own statistics (dygraph ops and grad nodes)."""
    from paddle.profiler.profiler_statistic import StatisticData

    data = StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info())
    items = data.event_summary.items  # operator name -> EventSummary.ItemBase
    return {name: item.cpu_time / 1e9 for name, item in items.items()}


def _conv_fns(paddle_conv: Any, torch_conv: Any, px: Any, tx: Any) -> Dict[str, Any]:
    import paddle
    import torch

    def paddle_fwd() -> None:
        with paddle.no_grad():
            paddle_conv(px)

    def torch_fwd() -> None:
        with torch.no_grad():
            torch_conv(tx)

    def paddle_train() -> None:
        paddle_conv(px).sum().backward()
        px.clear_gradient()
        paddle_conv.clear_gradients()

    def torch_train() -> None:
        torch_conv(tx).sum().backward()
        tx.grad = None
        torch_conv.zero_grad()

    return {"paddle_fwd": paddle_fwd, "torch_fwd": torch_fwd, "paddle_fwd_bwd": paddle_train,
            "torch_fwd_bwd": torch_train}


def conv_side_by_side(threads: int, runs: int) -> List[Dict[str, Any]]:
    import numpy as np
    import paddle
    import torch

    rows = []
    for batch, cin, cout, k, size in CONV_SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal([batch, cin, size, size]).astype("float32")
        paddle_conv = paddle.nn.Conv2D(cin, cout, k, padding=k // 2)
        torch_conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2)
        px = paddle.to_tensor(x, stop_gradient=False)
        tx = torch.from_numpy(x).requires_grad_(True)

        fns = _conv_fns(paddle_conv, torch_conv, px, tx)
        samples: Dict[str, List[float]] = {key: [] for key in fns}
        for fn in fns.values():
            fn()
        for _ in range(runs):  # interleaved: load drift hits every column alike
            for key, fn in fns.items():
                start = time.perf_counter()
                fn()
                samples[key].append(time.perf_counter() - start)
        med = {key: statistics.median(v) for key, v in samples.items()}
        gflop = 2 * batch * cout * cin * k * k * size * size / 1e9
        rows.append({"shape": f"{batch}x{cin}x{size}x{size} -> {cout}, {k}x{k}", "gflop_forward": gflop,
                     "seconds": med,
                     "forward_gflops": {"paddle": gflop / med["paddle_fwd"], "torch": gflop / med["torch_fwd"]},
                     "ratio_forward": med["paddle_fwd"] / med["torch_fwd"],
                     "ratio_fwd_bwd": med["paddle_fwd_bwd"] / med["torch_fwd_bwd"]})
    return rows


def format_report(result: Dict[str, Any]) -> str:
    lines = ["Paddle dygraph training step, CPU time by operator group (share of profiled operator time):"]
    for name, entry in result["models"].items():
        shares = ", ".join(f"{k} {100 * v:.0f} %" for k, v in sorted(entry["shares"].items(), key=lambda kv: -kv[1]))
        lines.append(f"  {name} {entry['inputs']}: step {entry['step_seconds']:.3f} s; {shares}")
    lines += ["", "Convolutions side by side (median; ratio = Paddle / torch):",
              "| conv | Paddle fwd GFLOP/s | torch fwd GFLOP/s | fwd ratio | fwd+bwd ratio |",
              "|---|---:|---:|---:|---:|"]
    for row in result["conv"]:
        lines.append(f"| {row['shape']} | {row['forward_gflops']['paddle']:.0f} | {row['forward_gflops']['torch']:.0f} "
                     f"| {row['ratio_forward']:.2f} | {row['ratio_fwd_bwd']:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["danet_r50", "lsnet"], choices=sorted(common.CASES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="the speed table's input sizes (slow)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    common.setup_threads(args.threads)
    result = {"environment": common.environment(args.threads), "args": vars(args),
              "models": {name: profile_model(name, args.full, args.threads) for name in args.models},
              "conv": conv_side_by_side(args.threads, args.runs)}
    result["report"] = format_report(result)
    print(result["report"])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
