"""Speed of every registered model: torch eager vs Paddle dygraph vs Paddle Inference, and one
training step in each framework, measured side by side in one process.

    python benchmarks/speed.py --threads 2 --runs 5 --out benchmarks/results/speed.json
    python benchmarks/speed.py --quick            # smoke test, 64x64 inputs

Per model (``common.CASES``): the twins are built with the same weights; after ``--warmup`` runs of
each measurement, ``--runs`` repetitions are taken INTERLEAVED (one of each measurement per round), so
machine-load drift hits all columns alike; the median is reported. Odd rounds run the measurements in
reverse order, and every timed call waits ``--settle`` seconds first: the runtimes in
this one process each keep worker threads that spin for a while after a run (Paddle's and torch's OpenMP,
ONNX Runtime's pool, OpenVINO's TBB), and a run started while another runtime's workers still spin loses
cores to them. Measured (``dasnet``, 2 threads, ONNX Runtime right after a Paddle Inference run vs after
1 s idle): 0.489 vs 0.431 s for the Paddle2ONNX graph, 0.480 vs 0.428 s for the torch.onnx graph; without
the pause the column that happened to follow Paddle Inference looked ~10 % slower. Measurements:

- ``torch``: torch eager inference (``eval()``, ``torch.no_grad()``);
- ``paddle``: Paddle dygraph inference (``eval()``, ``paddle.no_grad()``);
- ``infer_<mode>``: the model exported with ``paddle.jit.save`` (all outputs; batch/height/width
  dynamic like ``tools/export.py``, or fixed with ``--export-shapes fixed``) run by a Paddle Inference
  predictor with oneDNN ``off`` / ``deploy`` (oneDNN enabled, ``export.ONEDNN_DELETED_PASSES`` deleted:
  the package's deployment path) / ``no_placement`` (only ``onednn_placement_pass`` deleted: the lead the
  work started from; fails on LSNet with fixed 256x256 shapes) / ``plain`` (oneDNN with every pass;
  fails on bilinear interpolate in Paddle 3.3.1) — failures are reported as errors, not hidden;
- ``onnx_ort`` / ``onnx_openvino``: the same export converted by Paddle2ONNX (``engine.backends.convert_to_onnx``,
  opset 17) and run in ONNX Runtime / OpenVINO (f32 precision hint, compiled for the input shapes) with the
  package's deployment settings (``engine.backends.ort_session`` / ``compile_openvino``, ``--threads``
  threads); one inference per timed call, all its outputs read (before 2026-12-04 the OpenVINO column ran
  the model once per output: 3-6x too slow for the multi-output models, right only for FactSeg);
- ``torch_onnx_ort``: the peer a PyTorch user deploys with: the torch twin exported by ``torch.onnx.export``
  (TorchScript exporter, opset 17, dynamic batch / height / width) in ONNX Runtime, same settings;
- ``train_torch`` / ``train_paddle``: one step (forward in train mode, surrogate loss = sum of
  mean(o^2) over all outputs, backward, SGD-momentum step, zero grad) on the same input;
  ``train_paddle_static``: the same step with forward + loss through ``paddle.jit.to_static`` (the
  Trainer's ``train.to_static: true``).

Every Paddle output is also compared with torch (relative L2 of the first output), so a fast but wrong
path shows up in the table, and every deployment column (``infer_*``, ``onnx_ort``, ``onnx_openvino``) gets
the package's exactness verdict against Paddle dygraph (``exactness`` in the JSON;
``bench_utils.deployment_exactness``: the rule of ``tools/export.py --check``, with the float64 run of the
same weights as the truth, over every output; class-score outputs also keep their argmax). "The fastest
exact Paddle deployment" of the README is chosen among the exact columns only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import bench_utils as common  # noqa: E402  (a sibling module; must precede paddle/torch: thread setup)

INFER_MODES = ("off", "deploy", "no_placement", "plain")
ONNX_MODES = ("onnx_ort", "onnx_openvino", "torch_onnx_ort")


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None,
                        help=f"cases (default all registered): {sorted(common.CASES)}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds idle before each timed call, so no runtime's spinning workers are still "
                             "busy (0: back to back, the pre-2026-12-04 behaviour)")
    parser.add_argument("--quick", action="store_true", help="small inputs, runs=2: a smoke test")
    parser.add_argument("--infer-modes", nargs="*", default=list(INFER_MODES), choices=INFER_MODES)
    parser.add_argument("--onnx-modes", nargs="*", default=list(ONNX_MODES), choices=ONNX_MODES)
    parser.add_argument("--export-shapes", choices=("dynamic", "fixed"), default="dynamic",
                        help="export with -1 batch/height/width like tools/export.py (default) or at the input shape")
    parser.add_argument("--no-static-train", action="store_true",
                        help="skip the to_static training step (train_paddle_static)")
    parser.add_argument("--no-train", action="store_true", help="skip the training steps")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 2)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.settle < 0:
        parser.error("--runs and --threads must be >= 1, --warmup and --settle >= 0")
    return args


def infer_step(model, inputs, no_grad: Callable[[], Any]) -> Callable[[], Any]:
    """Inference (``no_grad``: ``torch.no_grad`` or ``paddle.no_grad``), in eval mode every time: the training
    columns switch the same model to train mode, and inference in train mode (batch statistics, dropout) is
    slower and computes something else."""

    def step() -> Any:
        model.eval()
        with no_grad():
            return model(*inputs)

    return step


def torch_train_step(model, inputs) -> Callable[[], None]:
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        model.train()
        loss = common.surrogate_loss(model(*inputs))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def paddle_train_step(model, inputs, static: bool = False) -> Callable[[], None]:
    """One Paddle step; ``static``: forward + loss through ``paddle.jit.to_static`` (a static program run
    by Paddle's executor; backward and optimizer as in dygraph), as ``train.to_static: true`` does."""
    import paddle

    def forward_loss(batch: List[Any]):
        return common.surrogate_loss(model(*batch))

    loss_of = paddle.jit.to_static(forward_loss, full_graph=True) if static else forward_loss

    optimizer = paddle.optimizer.Momentum(learning_rate=1e-9, momentum=0.9, parameters=model.parameters(),
                                          weight_decay=1e-4)

    def step() -> None:
        model.train()
        loss = loss_of(list(inputs))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    return step


def onnx_runners(args: argparse.Namespace, model_dir: str, torch_model, t_in, arrays, reference,
                 result: Dict[str, Any], judge: Callable[[str, List[Any]], None]) -> Dict[str, Callable[[], Any]]:
    """The ONNX columns: Paddle2ONNX of the Paddle export in ONNX Runtime / OpenVINO, and the torch twin's own
    ``torch.onnx.export`` in ONNX Runtime. A conversion or runtime failure is reported, not hidden."""
    import torch

    from paddle_models.engine.backends import compile_openvino, convert_to_onnx, ort_session, read_openvino_model

    fns: Dict[str, Callable[[], Any]] = {}
    if not args.onnx_modes:
        return fns
    paddle_onnx = None
    if {"onnx_ort", "onnx_openvino"} & set(args.onnx_modes):
        try:
            paddle_onnx = convert_to_onnx(model_dir)["file"]
        except Exception as exc:  # conversion failures are findings
            for key in ("onnx_ort", "onnx_openvino"):
                result["errors"][key] = f"Paddle2ONNX: {str(exc).splitlines()[0][:200]}"
    runners: Dict[str, Callable[[], Callable[[], Any]]] = {}
    if paddle_onnx and "onnx_ort" in args.onnx_modes:
        def ort_runner(path=paddle_onnx):
            session = ort_session(path, args.threads)
            feed = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
            return lambda: session.run(None, feed)
        runners["onnx_ort"] = ort_runner
    if paddle_onnx and "onnx_openvino" in args.onnx_modes:
        def ov_runner(path=paddle_onnx):
            # as the package's OpenVINO backend: compiled for the input shapes, f32 precision hint
            compiled = compile_openvino(read_openvino_model(path), args.threads, shapes=[a.shape for a in arrays])

            def run() -> List[Any]:
                outputs = compiled(list(arrays))  # ONE inference; then every output of it
                return [outputs[port] for port in compiled.outputs]
            return run
        runners["onnx_openvino"] = ov_runner
    if "torch_onnx_ort" in args.onnx_modes:
        def torch_runner():
            path = os.path.join(model_dir, "torch.onnx")
            names = common.export_torch_onnx(torch_model, t_in, path)
            session = ort_session(path, args.threads)
            feed = dict(zip(names, arrays))
            return lambda: session.run(None, feed)
        runners["torch_onnx_ort"] = torch_runner
    for key, make in runners.items():
        try:
            with torch.no_grad():
                fn = make()
            first = common.flatten(fn())
            result["rel_l2_vs_torch"][key] = common.rel_l2(first[0], reference)
            if key != "torch_onnx_ort":
                judge(key, first)
            fns[key] = fn
        except Exception as exc:  # report, do not hide
            result["errors"][key] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return fns


def round_order(keys: List[str], round_index: int) -> List[str]:
    """The measurement order of one round: as listed in even rounds, reversed in odd ones, so every column
    follows a different neighbour every other round."""
    return list(keys) if round_index % 2 == 0 else list(reversed(keys))


def bench_case(name: str, case: common.Case, args: argparse.Namespace) -> Dict[str, Any]:
    import paddle
    import torch
    from paddle import inference

    shapes = case.quick_inputs if args.quick else case.inputs
    arrays = common.make_inputs(shapes)
    torch_model, paddle_model = common.build_twins(case)
    torch_model.eval()
    paddle_model.eval()
    t_in = [torch.from_numpy(a) for a in arrays]
    p_in = [paddle.to_tensor(a) for a in arrays]
    result: Dict[str, Any] = {"model": case.model, "kwargs": case.kwargs, "inputs": [list(s) for s in shapes],
                              "seconds": {}, "errors": {}, "rel_l2_vs_torch": {}, "exactness": {}}

    with torch.no_grad():
        reference = common.flatten(torch_model(*t_in))[0].numpy()

    torch_infer = infer_step(torch_model, t_in, torch.no_grad)
    paddle_infer = infer_step(paddle_model, p_in, paddle.no_grad)
    fns: Dict[str, Callable[[], Any]] = {"torch": torch_infer, "paddle": paddle_infer}
    dygraph = [o.numpy() for o in common.distinct(common.flatten(paddle_infer()))]
    result["rel_l2_vs_torch"]["paddle"] = common.rel_l2(dygraph[0], reference)
    truth = common.float64_outputs(case, paddle_model, arrays)

    def judge(key: str, outputs: List[Any]) -> None:
        """Each deployment column against Paddle dygraph, by the package's exactness rule: only an exact
        column can be "the fastest exact Paddle deployment"."""
        result["exactness"][key] = common.deployment_exactness(case, dygraph, outputs, truth)

    model_dir = common.export_for_inference(paddle_model, shapes, dynamic=args.export_shapes == "dynamic")
    for mode in args.infer_modes:
        key = f"infer_{mode}"
        try:
            predictor = inference.create_predictor(common.inference_config(model_dir, args.threads, mode))
            out = common.run_all_outputs(predictor, arrays)  # first run also optimises the graph
            result["rel_l2_vs_torch"][key] = common.rel_l2(out[0], reference)
            judge(key, out)
            fns[key] = (lambda p=predictor: common.run_all_outputs(p, arrays))
        except Exception as exc:  # a failing predictor mode is a finding, reported in the table
            result["errors"][key] = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__

    fns.update(onnx_runners(args, model_dir, torch_model, t_in, arrays, reference, result, judge))

    if not args.no_train:
        fns["train_torch"] = torch_train_step(torch_model, t_in)
        fns["train_paddle"] = paddle_train_step(paddle_model, p_in)
        if not args.no_static_train:
            fns["train_paddle_static"] = paddle_train_step(paddle_model, p_in, static=True)

    samples: Dict[str, List[float]] = {k: [] for k in fns}
    for round_index in range(args.warmup + args.runs):
        for key in round_order(list(fns), round_index):
            fn = fns[key]
            if args.settle:
                time.sleep(args.settle)
            start = time.perf_counter()
            try:
                fn()
            except Exception as exc:  # e.g. a predictor broken by another one's oneDNN thread state
                result["errors"][key] = "failed on a later run: " + (str(exc).strip().splitlines() or [""])[0][:200]
                del fns[key], samples[key]
                continue
            if round_index >= args.warmup:
                samples[key].append(time.perf_counter() - start)
    result["samples"] = samples
    result["seconds"] = {k: statistics.median(v) for k, v in samples.items()}
    s = result["seconds"]
    ratios = {k: s[k] / s["torch"] for k in s if k == "paddle" or k.startswith(("infer_", "onnx_"))}
    if "torch_onnx_ort" in s:
        ratios["torch_onnx_ort"] = s["torch_onnx_ort"] / s["torch"]
        for key in ("onnx_ort", "onnx_openvino"):
            if key in s:
                ratios[f"{key}_vs_torch_onnx"] = s[key] / s["torch_onnx_ort"]
    for key in ("train_paddle", "train_paddle_static"):
        if key in s:
            ratios[key] = s[key] / s["train_torch"]
    result["ratio_vs_torch"] = ratios
    return result


def format_table(results: Dict[str, Dict[str, Any]], modes: List[str], train: bool,
                 onnx_modes: List[str] = ()) -> str:
    cols = ["torch", "paddle"] + [f"infer_{m}" for m in modes] + list(onnx_modes)
    if train:
        cols += ["train_torch", "train_paddle"]
        if any("train_paddle_static" in {**r["seconds"], **r["errors"]} for r in results.values()):
            cols.append("train_paddle_static")
    header = ["model", "input"] + cols
    rows = [header]
    for name, r in results.items():
        s, ratio = r["seconds"], r["ratio_vs_torch"]
        cells = [name, "+".join("x".join(map(str, shape)) for shape in r["inputs"])]
        for col in cols:
            if col in s:
                text = f"{s[col]:.3f}s"
                if col in ratio:
                    text += f" ({ratio[col]:.2f}x)"
                if not r.get("exactness", {}).get(col, {"exact": True})["exact"]:
                    text += " not exact"
                cells.append(text)
            else:
                cells.append("error" if col in r["errors"] else "-")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    args = parse_args(argv)
    common.setup_threads(args.threads)
    chosen, uncovered = common.cases_for_registered(args.models)
    env = common.environment(args.threads)
    print(f"# {env}", flush=True)
    if uncovered:
        print(f"# registered models without a benchmark case (skipped): {uncovered}", flush=True)
    results: Dict[str, Dict[str, Any]] = {}
    for name, case in chosen.items():
        print(f"# {name} ...", flush=True)
        results[name] = bench_case(name, case, args)
        print(json.dumps({k: results[name][k] for k in ("seconds", "ratio_vs_torch", "rel_l2_vs_torch", "exactness",
                                                        "errors")}), flush=True)
    table = format_table(results, args.infer_modes, not args.no_train, args.onnx_modes)
    print("\nmedian seconds (Paddle/torch-eager ratio; train_paddle/train_torch):")
    print(table)
    for name, r in results.items():
        for key, err in r["errors"].items():
            print(f"{name} {key}: {err}")
        for key, verdict in r["exactness"].items():
            if not verdict["exact"]:
                print(f"{name} {key}: not exact (engine.backends.exactness vs Paddle dygraph): {verdict['reason']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        payload = {"environment": env, "args": vars(args), "uncovered_models": uncovered, "results": results,
                   "table": table}
        Path(args.out).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
