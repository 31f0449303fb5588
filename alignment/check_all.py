"""Run every alignment check for every registered case and write a Markdown report.

    python -m alignment.check_all [--size small|full] [--model danet_r50 ...] [--out output/alignment]

The report (``<out>/REPORT_<size>.md``) lists, per case and step, the status, the worst compared
value (max and mean |diff|, the reference magnitude), the bar, and — for a float32 miss — the
float64 evidence next to it. The README's alignment table is copied from it. Exit code: 0 when
every bar is met, 3 when the only misses are float32 rounding proved by float64, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from . import (
    check_backward,
    check_convergence,
    check_data,
    check_factseg_modes,
    check_forward,
    check_loss,
    check_lr,
    check_metric,
    check_train,
)
from .cases import resolve_cases
from .harness import DEFAULT_OUT, EXIT_ROUNDING, combine_exit_codes, result_stem

# (step name, module main, extra argv, dtype written in the result file name)
STEPS: List[Tuple[str, Callable, List[str], str]] = [
    ("forward", check_forward.main, [], "float32"),
    ("forward", check_forward.main, ["--dtype", "float64"], "float64"),
    ("loss", check_loss.main, [], "float32"),
    ("backward", check_backward.main, [], "float32"),
    ("lr", check_lr.main, [], "float64"),
    ("metric", check_metric.main, [], "float64"),
    ("data", check_data.main, [], "float32"),
    ("train", check_train.main, [], "float32"),
    ("convergence", check_convergence.main, [], "float32"),
]


# Model-specific steps a case lists in ``extra_checks``.
EXTRA_STEPS: Dict[str, Tuple[Callable, str]] = {"factseg_modes": (check_factseg_modes.main, "float32")}


def _worst(rows: List[Dict]) -> Dict | None:
    def score(r: Dict) -> float:
        if r["ref_max"]:
            return r["max_diff"] / r["ref_max"]
        return 0.0 if r["max_diff"] == 0 else float("inf")

    return max(rows, key=score) if rows else None


def _cell(row: Dict | None) -> str:
    if row is None:
        return "-"
    return (f"`{row['name']}` {row['max_diff']:.2e} / {row['mean_diff']:.2e} "
            f"(max\\|ref\\| {row['ref_max']:.2e})")


def _escape(text: str) -> str:
    """A table cell's own pipes (``max|ref|``), escaped so they do not split the Markdown row."""
    return re.sub(r"(?<!\\)\|", r"\\|", text)


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def shape_cell(res: Dict) -> str:
    """The batch shape a result ran at, and its float64 evidence's where that was smaller. A result written
    before the fields existed falls back to the case registry and the evidence note."""
    from .cases import CASES

    case = CASES.get(res["case"])
    shape = res.get("shape")
    if not shape and case is not None and res["step"] in ("forward", "loss", "backward", "train"):
        shapes = case.train_shapes if res["step"] == "train" else case.input_shapes
        shape = shapes.get(res["size"]) or case.input_shapes.get(res["size"])
    if not shape:
        return "-"
    cell = _dims(shape) + (" pairs" if case is not None and case.num_inputs == 2 else "")
    evidence = res.get("evidence_shape")
    if not evidence:
        found = [re.search(r"float64 evidence at \[([\d, ]+)\]", n) for n in res.get("notes") or []]
        evidence = next(([int(d) for d in m.group(1).split(",")] for m in found if m), None)
    return cell + (f" (float64: {_dims(evidence)})" if evidence else "")


def steps_table(results: List[Dict], shapes: bool = False) -> str:
    """One row per (case, step, dtype) result: status, worst value, bar, float64 evidence, wall time; with
    ``shapes`` also the batch shape it ran at (the paper-size table, where the float64 evidence of the heavy
    steps runs smaller)."""
    lines = ["| case | step | dtype | " + ("input | " if shapes else "") +
             "status | worst: max / mean diff | bar | float64 evidence | time |",
             "|---|---|---|" + ("---|" if shapes else "") + "---|---|---|---|---:|"]
    for res in results:
        worst = _worst(res["rows"])
        evidence = _worst(res["evidence"]) if res["evidence"] else None
        ev = (f"all {len(res['evidence'])} values <= 1e-9 rel.; worst {_cell(evidence)}"
              if evidence and all(r["passed"] for r in res["evidence"]) else
              (_cell(evidence) + " (misses)" if evidence else ""))
        acc = res.get("accuracy") or {}
        distance = acc.get("distance_to_float64")
        if distance:  # forward, float32: which framework rounds more
            ev += ("; " if ev else "") + (f"float32 vs its own float64: torch {distance['torch']:.1e}, Paddle "
                                          f"{distance['paddle']:.1e}")
        if acc.get("missed_rows_compared"):
            ev += (f"; float32 vs float64, worst: torch {acc['torch32_worst_rel_error']:.1e}, Paddle "
                   f"{acc['paddle32_worst_rel_error']:.1e} (Paddle at least as close in "
                   f"{acc['paddle32_at_least_as_close']}/{acc['missed_rows_compared']} missed values)")
        seconds = res.get("seconds") or 0.0
        time_cell = f"{seconds / 60:.1f} min" if seconds >= 60 else (f"{seconds:.0f} s" if seconds else "-")
        shape = f"{shape_cell(res)} | " if shapes else ""
        lines.append(f"| {res['case']} | {res['step']} | {res['dtype']} | {shape}**{res['status']}** | "
                     f"{_cell(worst)} | {_escape(worst['bar']) if worst else ''} | {_escape(ev)} | {time_cell} |")
    return "\n".join(lines)


def write_report(out: Path, size: str, results: List[Dict], seconds: float | None) -> Path:
    how = (f"Command: `python -m alignment.check_all --size {size}` ({seconds / 60:.1f} min). "
           if seconds is not None else
           f"Collected (`--from-results`) from the result files of `python -m alignment.check_<step> --size {size}`. ")
    lines = [f"# Alignment report ({size})", "",
             how + "Columns: worst value by max|diff|/max|ref| — max|diff| / mean|diff| (max|ref|).", "",
             steps_table(results, shapes=size == "full")]
    notes = sorted({n for res in results for n in res["notes"]})
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    path = out / f"REPORT_{size}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def collect(out: Path, size: str, steps: Sequence[str] | None = None) -> List[Dict]:
    """Every result file a check wrote under ``out`` for ``size``, in case then step order."""
    results = []
    for case in resolve_cases(None):
        names = [(s, d) for s, _, _, d in STEPS] + [(n, EXTRA_STEPS[n][1]) for n in case.extra_checks]
        for step, dtype in dict.fromkeys(names):
            if steps and step not in steps:
                continue
            path = out / step / f"{result_stem(case.name, size, dtype)}_result.json"
            if path.is_file():
                results.append(json.loads(path.read_text()))
    return results


def _mean_std(values: List[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return f"{mean:.4f} +- {std:.4f} ({', '.join(f'{v:.3f}' for v in values)})"


def _how_run(result: Dict) -> str:
    """How the case's wall time was taken: runs at once (``--jobs``: the accuracy field, else the float32
    note that says it) and the machine, where recorded (Paddle's CPU speed depends on the processor)."""
    acc = result.get("accuracy") or {}
    jobs = acc.get("jobs")
    if jobs is None:
        found = [re.search(r"with (\d+) run\(s\) at a time", n) for n in result.get("notes") or []]
        jobs = next((int(m.group(1)) for m in found if m), 1)
    parts = ([f"{jobs} runs at a time"] if jobs > 1 else []) + ([acc["machine"]] if acc.get("machine") else [])
    return f" ({'; '.join(parts)})" if parts else ""


def training_table(results: List[Dict], size: str) -> str:
    """The training-alignment table (``check_convergence`` results): final metric per framework over the
    seeds, the chance level, the float64 agreement, the curves, the wall time."""
    lines = ["| case | iterations (float32 / float64) | metric | Paddle (mean +- std) | torch (mean +- std) | "
             "chance | float64 worst: losses / parameters | status | curves | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        if res["step"] != "convergence":
            continue
        acc = res.get("accuracy") or {}
        finals = acc.get("finals") or {}

        def worst(rows: List[Dict], prefix: str) -> Tuple[float | None, float | None]:
            named = {r["name"]: r for r in rows}
            losses = [r["max_diff"] for n, r in named.items() if n.startswith(f"{prefix}.loss.")]
            params = named.get(f"{prefix}.final_parameters")
            return (max(losses) if losses else None), (params["max_diff"] if params else None)

        loss_rel, param_rel = worst(res["rows"], "float64")
        floor_loss, floor_param = worst(res.get("evidence") or [], "floor")
        f64 = (f"{loss_rel:.1e} / {param_rel:.1e}" if loss_rel is not None and param_rel is not None else "not run")
        if floor_loss is not None and floor_param is not None:
            nudged = next((r for r in res.get("evidence") or [] if r["name"] == "paddle_vs_nudged.loss"), None)
            f64 += (f" (torch vs torch nudged 1e-15: {floor_loss:.1e} / {floor_param:.1e}"
                    + (f"; Paddle vs nudged torch, losses: {nudged['max_diff']:.1e}" if nudged else "") + ")")
        curves = acc.get("curves")
        link = f"[png]({os.path.relpath(curves, Path.cwd())})" if curves else "-"
        lines.append(f"| {res['case']} | {acc.get('total_iters', '-')} / {acc.get('float64_iters') or '-'} | "
                     f"{acc.get('metric', '-')} | {_mean_std(finals.get('paddle', []))} | "
                     f"{_mean_std(finals.get('torch', []))} | "
                     f"{acc.get('chance', float('nan')):.4f} | {f64} | **{res['status']}** | {link} | "
                     f"{acc.get('seconds', 0) / 60:.1f} min{_how_run(res)} |")
    return "\n".join(lines)


def _run_check(main_fn: Callable, argv: List[str], isolate: bool) -> int:
    """One check's exit code; ``isolate`` runs it as ``python -m <its module>`` in a child process."""
    if not isolate:
        return main_fn(argv)
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", main_fn.__module__, *argv], env=env).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=None)
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", nargs="*", default=None, help="subset of steps to run")
    parser.add_argument("--allow-rounding", action="store_true")
    parser.add_argument("--jobs", type=int, default=1,
                        help="check_convergence: training runs at a time (one process and math thread each)")
    parser.add_argument("--full-evidence", action="store_true",
                        help="keep every compared array in the reprod_log files (see alignment.harness)")
    parser.add_argument("--from-results", action="store_true",
                        help="do not run anything: build the report from the result files the checks wrote")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                        help="run each check in its own process, so its memory is returned before the next one "
                             "(default: on for --size full, where one check peaks at up to 19 GB)")
    parser.add_argument("--readme", action="store_true",
                        help="also regenerate the README tables (README.md and README_cn.md; tools/readme_tables.py)")
    args = parser.parse_args(argv)
    if args.full_evidence:
        os.environ["ALIGN_EVIDENCE"] = "full"
    isolate = args.size == "full" if args.isolate is None else args.isolate
    start = time.time()
    codes, results = [], []
    for case in resolve_cases(args.model):
        steps = STEPS + [(name, *EXTRA_STEPS[name][:1], [], EXTRA_STEPS[name][1]) for name in case.extra_checks]
        for step, main_fn, extra, dtype in steps:
            if args.steps and step not in args.steps:
                continue
            stem = result_stem(case.name, args.size, dtype)
            path = args.out / step / f"{stem}_result.json"
            if args.from_results:
                if not path.is_file():
                    print(f"[{step}] {case.name}: no result file {path} (run the check first)")
                    codes.append(1)
                    continue
                result = json.loads(path.read_text())
                codes.append({"pass": 0, "rounding": EXIT_ROUNDING}.get(result["status"], 1))
            else:
                argv_step = ["--model", case.name, "--size", args.size, "--out", str(args.out), *extra]
                argv_step += ["--jobs", str(args.jobs)] if step == "convergence" else []
                codes.append(_run_check(main_fn, argv_step, isolate))
                result = json.loads(path.read_text())
            results.append(result)
    step_results = [r for r in results if r["step"] != "convergence"]
    report = write_report(args.out, args.size, step_results, None if args.from_results else time.time() - start)
    print(f"report: {report}")
    training = training_table(results, args.size)
    training_path = args.out / f"TRAINING_{args.size}.md"
    training_path.write_text(f"# Training alignment ({args.size})\n\n{training}\n")
    print(f"training alignment: {training_path}")
    if args.readme:  # the README tables are written by one generator, into both READMEs
        import subprocess
        import sys

        subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "tools" / "readme_tables.py"),
                        "--write"], check=True)
    code = combine_exit_codes(codes)
    return 0 if code == EXIT_ROUNDING and args.allow_rounding else code


if __name__ == "__main__":
    raise SystemExit(main())
