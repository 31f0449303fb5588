"""Where ONNX Runtime spends its time: the Paddle2ONNX graph vs the torch twin's ``torch.onnx.export`` graph.

    python benchmarks/ort_profile.py --models dasnet lsnet --threads 1 --runs 5 \
        --out benchmarks/results/ort_profile_t1.json

Both graphs run in the same ONNX Runtime session settings as the deployment (``engine.backends.ort_session``),
with ORT's own profiler on. Per graph it reports: the node count as written and after ORT's graph optimisations
(``optimized_model_filepath``; what actually runs), the wall time per run, and the kernel time per op type summed
over the nodes of one run (median over ``--runs``). The op types are the optimised graph's (FusedConv, ...), so the
two graphs are compared after ORT has folded what it can. The difference table, largest first, is what the
Paddle2ONNX graph pays over the torch one.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

import bench_utils as common


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help=f"cases (default all): {sorted(common.CASES)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="64x64 inputs (a smoke run)")
    parser.add_argument("--fixed-shapes", action="store_true",
                        help="export both graphs with the input's fixed H/W instead of dynamic axes")
    parser.add_argument("--prelu", choices=("decompose", "keep"), default="decompose",
                        help="Paddle2ONNX graph: PRelu rewritten exactly as the deployment does (default) or kept")
    parser.add_argument("--keep", default=None, help="keep the exported graphs in this folder")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


def profile_session(path: str, arrays: Sequence[Any], threads: int, runs: int, work: str) -> Dict[str, Any]:
    """Time ``runs`` runs of ``path`` on ``arrays`` (after one warm-up run) with ORT's profiler, in the
    deployment's session settings; per op type kernel seconds."""
    import onnx

    from paddle_models.engine.backends import ort_session, ort_session_options

    optimized = os.path.join(work, os.path.basename(path) + ".opt.onnx")
    options = ort_session_options(threads)
    options.optimized_model_filepath = optimized
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(work, os.path.basename(path) + ".prof")
    session = ort_session(path, threads, options)
    feed = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
    session.run(None, feed)
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        walls.append(time.perf_counter() - start)
    trace = session.end_profiling()
    with open(trace, encoding="utf-8") as handle:
        events = json.load(handle)
    os.remove(trace)
    # kernel events: cat "Node", name "<node>_kernel_time", args.op_name; one group of them per run
    per_run: List[Dict[str, float]] = []
    current: Dict[str, float] = collections.defaultdict(float)
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            per_run.append(current)
            current = collections.defaultdict(float)
        elif event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            current[event["args"]["op_name"]] += event["dur"] * 1e-6
    measured = per_run[1:]  # the first model_run is the warm-up
    op_types = sorted({op for run in measured for op in run})
    by_op = {op: statistics.median(run.get(op, 0.0) for run in measured) for op in op_types}
    written = onnx.load(path, load_external_data=False).graph.node
    after = onnx.load(optimized, load_external_data=False).graph.node
    return {"nodes_written": len(written), "nodes_after_ort": len(after),
            "nodes_after_ort_by_op": dict(collections.Counter(n.op_type for n in after)),
            "wall_seconds": statistics.median(walls), "wall_samples": walls,
            "kernel_seconds": sum(by_op.values()), "kernel_seconds_by_op": by_op}


def profile_case(name: str, case: common.Case, args: argparse.Namespace, work: str) -> Dict[str, Any]:
    import torch

    from paddle_models.engine.backends import convert_to_onnx

    shapes = case.quick_inputs if args.quick else case.inputs
    arrays = common.make_inputs(shapes)
    torch_model, paddle_model = common.build_twins(case)
    torch_model.eval()
    paddle_model.eval()
    model_dir = common.export_for_inference(paddle_model, shapes, out_dir=os.path.join(work, name),
                                            dynamic=not args.fixed_shapes)
    paddle_onnx = convert_to_onnx(model_dir, prelu=args.prelu)["file"]
    torch_onnx = os.path.join(model_dir, "torch.onnx")
    common.export_torch_onnx(torch_model, [torch.from_numpy(a) for a in arrays], torch_onnx,
                             dynamic=not args.fixed_shapes)
    result = {"inputs": [list(s) for s in shapes],
              "paddle2onnx": profile_session(paddle_onnx, arrays, args.threads, args.runs, work),
              "torch_onnx": profile_session(torch_onnx, arrays, args.threads, args.runs, work)}
    p, t = result["paddle2onnx"]["kernel_seconds_by_op"], result["torch_onnx"]["kernel_seconds_by_op"]
    result["difference_by_op"] = dict(sorted(((op, p.get(op, 0.0) - t.get(op, 0.0)) for op in set(p) | set(t)),
                                             key=lambda kv: -abs(kv[1])))
    return result


def format_case(name: str, r: Dict[str, Any], top: int = 10) -> str:
    p, t = r["paddle2onnx"], r["torch_onnx"]
    lines = [f"## {name} {r['inputs']}",
             f"wall per run: Paddle2ONNX {p['wall_seconds']:.4f} s, torch.onnx {t['wall_seconds']:.4f} s "
             f"(ratio {p['wall_seconds'] / t['wall_seconds']:.3f}); kernel sum {p['kernel_seconds']:.4f} vs "
             f"{t['kernel_seconds']:.4f} s",
             f"nodes written {p['nodes_written']} vs {t['nodes_written']}; after ORT's optimisation "
             f"{p['nodes_after_ort']} vs {t['nodes_after_ort']}",
             f"{'op type (after ORT)':28s} {'Paddle2ONNX':>12s} {'torch.onnx':>12s} {'diff':>10s}  nodes"]
    pn, tn = p["nodes_after_ort_by_op"], t["nodes_after_ort_by_op"]
    for op, diff in list(r["difference_by_op"].items())[:top]:
        lines.append(f"{op:28s} {p['kernel_seconds_by_op'].get(op, 0.0):12.4f} "
                     f"{t['kernel_seconds_by_op'].get(op, 0.0):12.4f} {diff:+10.4f}  "
                     f"{pn.get(op, 0)} vs {tn.get(op, 0)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.setup_threads(args.threads)
    cases, _ = common.cases_for_registered(args.models)
    work = args.keep or tempfile.mkdtemp(prefix="ort_profile_")
    os.makedirs(work, exist_ok=True)
    results = {}
    for name, case in cases.items():
        results[name] = profile_case(name, case, args, work)
        print(format_case(name, results[name]), flush=True)
    if args.out:
        payload = {"environment": common.environment(args.threads), "args": vars(args), "results": results}
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
