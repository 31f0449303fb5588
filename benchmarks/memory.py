"""Peak resident memory (RSS) of large-input inference and of one training step, one subprocess per
measurement so peaks are never shared.

    python benchmarks/memory.py --out benchmarks/results/memory.json          # the issue's sizes
    python benchmarks/memory.py --quick                                       # small sizes, smoke test
    python benchmarks/memory.py --only danet_whole --pam-chunks none 1024     # DANet-R101 only

Measurements (each in a fresh ``python benchmarks/memory.py --worker ...`` process):

(a) ``danet_whole``: DANet-R101 whole-image inference (eval, no_grad) at ``--danet-size`` (1024x2048),
    once per ``--pam-chunks`` entry ("none" = the official N x N attention; an int = query rows per
    chunk). The plain form needs 2 x N^2 x 4 bytes for energy + softmax (8.6 GB at N = 128 x 256); it is
    skipped with a message when that exceeds 80 % of the available memory, unless ``--force``.
(b) ``factseg_window``: FactSeg-R50 sliding-window evaluation (``paddle_models/engine/factseg_eval.py``:
    896 / 512 windows, streamed row band by row band; the evaluator ``tools/eval.py`` runs for
    ``eval.window_rule: factseg``) of a generated uint8 ``--factseg-size`` square image (8000), or
    ``--factseg-height`` rows of that width: the streaming accumulator depends on the width only, so a
    short strip of full width shows the same accumulator at a fraction of the time (225 windows at
    8000 x 8000 vs 15 at 8000 x 896). Skipped if that module is missing.
(c) ``train_<case>``: one training step (train mode, surrogate loss = sum of mean(o^2) over the
    outputs, backward, SGD-momentum step) per model at the paper's crop and per-device batch
    (``TRAIN_DEFAULTS``; ``--train-batch`` / ``--train-crop`` override).

Reported per measurement: ``peak_rss_mb`` = the kernel's high-water mark of the worker (VmHWM, exact,
includes interpreter + framework + weights), ``baseline_rss_mb`` = RSS just before the measured call
(after imports, model build and input creation), their difference, the parent's psutil-sampled peak
(every 20 ms, a cross-check) and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import bench_utils as common  # noqa: E402

# case -> (per-device batch, square crop) from the papers / official configs (docs/*.md)
TRAIN_DEFAULTS = {
    "danet_r50": (2, 768),    # Cityscapes: batch 8 on 4 GPUs, crop 768
    "danet_r101": (2, 768),
    "dasnet": (12, 256),      # CDD 256x256 pairs, batch 12
    "dasnet_v2": (4, 256),    # batch 4
    "lsnet": (12, 256),       # batch 12
    "factseg": (4, 896),      # iSAID 896 windows, 4 per GPU
}
QUICK_TRAIN = (1, 64)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- workers (run in a subprocess)
def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    kind, framework = spec["kind"], spec.get("framework", "paddle")
    common.setup_threads(spec["threads"], (framework,))
    import numpy as np

    if framework == "paddle":
        import paddle

        to_tensor, no_grad = paddle.to_tensor, paddle.no_grad
    else:
        import torch

        to_tensor, no_grad = torch.from_numpy, torch.no_grad
    build = __import__("paddle_models" if framework == "paddle" else "torch_ref")
    info: Dict[str, Any] = {}

    if kind == "danet_whole":
        model = build.build_model("danet", backbone="resnet101", pam_query_chunk=spec["chunk"])
        model.eval()
        x = to_tensor(np.random.default_rng(0).standard_normal([1, 3, *spec["size"]]).astype("float32"))

        def run() -> None:
            with no_grad():
                outputs = model(x)
            info["output_shape"] = list(outputs[0].shape)

    elif kind == "factseg_window":
        from paddle_models.engine.factseg_eval import FactSegSlidingWindow

        model = build.build_model("factseg")
        model.eval()
        height, width = spec["size"] if isinstance(spec["size"], list) else (spec["size"], spec["size"])
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        protocol = FactSegSlidingWindow()
        info["windows"] = len(protocol.windows(height, width))

        def run() -> None:
            rows = 0
            for _, labels in protocol.stream(model, image):
                rows += labels.shape[0]
            info["rows_streamed"] = rows

    elif kind == "train":
        case = common.CASES[spec["case"]]
        model = build.build_model(case.model, **case.kwargs)
        model.train()
        batch, crop = spec["batch"], spec["crop"]
        rng = np.random.default_rng(0)
        inputs = [to_tensor(rng.standard_normal([batch, 3, crop, crop]).astype("float32")) for _ in case.inputs]
        if framework == "paddle":
            optimizer = paddle.optimizer.Momentum(1e-9, momentum=0.9, parameters=model.parameters())
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-9, momentum=0.9)

        def run() -> None:
            loss = common.surrogate_loss(model(*inputs))
            loss.backward()
            optimizer.step()
            info["loss"] = float(loss)

    else:
        raise ValueError(f"unknown measurement kind {kind!r}")

    baseline = _rss_mb()
    start = time.perf_counter()
    run()
    return {"baseline_rss_mb": baseline, "peak_rss_mb": _hwm_mb(), "seconds": time.perf_counter() - start, **info}


# ---------------------------------------------------------------- parent
def measure(spec: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    handle = psutil.Process(proc.pid)
    sampled, start = 0.0, time.time()
    while proc.poll() is None:
        try:
            sampled = max(sampled, handle.memory_info().rss / 2**20)
        except psutil.Error:
            pass
        if time.time() - start > timeout:
            proc.kill()
            proc.wait()
            return {"error": f"timed out after {timeout:.0f} s", "sampled_peak_rss_mb": sampled}
        time.sleep(0.02)
    out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exit {proc.returncode}: {tail[:300]}", "sampled_peak_rss_mb": sampled}
    result = json.loads(lines[-1])
    result["sampled_peak_rss_mb"] = sampled
    result["increase_mb"] = result["peak_rss_mb"] - result["baseline_rss_mb"]
    return result


def plan(args: argparse.Namespace) -> List[Dict[str, Any]]:
    import psutil

    specs: List[Dict[str, Any]] = []
    base = {"threads": args.threads}
    only = set(args.only or ["danet_whole", "factseg_window", "train"])
    if "danet_whole" in only:
        size = [256, 512] if args.quick and args.danet_size is None else (args.danet_size or [1024, 2048])
        n = (size[0] // 8) * (size[1] // 8)
        for fw in args.frameworks:
            for chunk in args.pam_chunks:
                chunk_value = None if chunk == "none" else int(chunk)
                spec = {**base, "name": f"danet_r101_whole_{size[0]}x{size[1]}_{fw}_pam_{chunk}", "kind": "danet_whole",
                        "framework": fw, "size": size, "chunk": chunk_value}
                need_mb = 2 * n * n * 4 / 2**20
                if chunk_value is None and not args.force and need_mb > 0.8 * psutil.virtual_memory().available / 2**20:
                    spec["skip"] = (f"plain PAM needs ~{need_mb:.0f} MB for energy + softmax alone, "
                                    f"{psutil.virtual_memory().available / 2**20:.0f} MB available (use --force)")
                specs.append(spec)
    if "factseg_window" in only:
        side = 1024 if args.quick and args.factseg_size is None else (args.factseg_size or 8000)
        height = args.factseg_height or side
        spec = {**base, "name": f"factseg_window_{height}x{side}_paddle", "kind": "factseg_window",
                "size": [height, side]}
        if not (common.ROOT / "paddle_models" / "engine" / "factseg_eval.py").is_file():
            spec["skip"] = "paddle_models/engine/factseg_eval.py not found"
        specs.append(spec)
    if "train" in only:
        chosen, _ = common.cases_for_registered(args.train_models)
        for name in chosen:
            batch, crop = QUICK_TRAIN if args.quick else TRAIN_DEFAULTS[name]
            batch, crop = args.train_batch or batch, args.train_crop or crop
            for fw in args.frameworks:
                specs.append({**base, "name": f"train_{name}_b{batch}_{crop}_{fw}", "kind": "train", "case": name,
                              "framework": fw, "batch": batch, "crop": crop})
    return specs


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", choices=["danet_whole", "factseg_window", "train"])
    parser.add_argument("--frameworks", nargs="*", default=["paddle"], choices=["paddle", "torch"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--danet-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--pam-chunks", nargs="*", default=["none", "1024"], help='"none" and/or ints')
    parser.add_argument("--force", action="store_true", help="run the plain PAM even if memory looks short")
    parser.add_argument("--factseg-size", type=int, default=None, help="FactSeg image width (and height); 8000")
    parser.add_argument("--factseg-height", type=int, default=None,
                        help="FactSeg image height (default: square); the accumulator depends on the width only")
    parser.add_argument("--train-models", nargs="*", default=None)
    parser.add_argument("--train-batch", type=int, default=None)
    parser.add_argument("--train-crop", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def main(argv: List[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    results: Dict[str, Dict[str, Any]] = {}
    print(f"# allocator: {common.allocator()}; threads {args.threads}; one subprocess per measurement", flush=True)
    for spec in plan(args):
        if "skip" in spec:
            results[spec["name"]] = {"skipped": spec["skip"]}
        else:
            results[spec["name"]] = measure(spec, args.timeout)
        print(spec["name"], json.dumps(results[spec["name"]]), flush=True)
    print("\n| measurement | peak RSS MB | before MB | increase MB | seconds |\n|---|---|---|---|---|")
    for name, r in results.items():
        if "peak_rss_mb" in r:
            print(f"| {name} | {r['peak_rss_mb']:.0f} | {r['baseline_rss_mb']:.0f} | {r['increase_mb']:.0f} | "
                  f"{r['seconds']:.1f} |")
        else:
            print(f"| {name} | {r.get('skipped') or r.get('error')} | | | |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"allocator": common.allocator(), "args": vars(args),
                                              "results": results}, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
