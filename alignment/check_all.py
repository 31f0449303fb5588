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
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from . import (
    check_backward, check_data, check_forward, check_loss, check_lr, check_metric, check_train,
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
]


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


def write_report(out: Path, size: str, results: List[Dict], seconds: float) -> Path:
    lines = [f"# Alignment report ({size})", "",
             f"Command: `python -m alignment.check_all --size {size}` ({seconds / 60:.1f} min). "
             "Columns: worst value by max|diff|/max|ref| — max|diff| / mean|diff| (max|ref|).", "",
             "| case | step | dtype | status | worst: max / mean diff | bar | float64 evidence |",
             "|---|---|---|---|---|---|---|"]
    for res in results:
        worst = _worst(res["rows"])
        evidence = _worst(res["evidence"]) if res["evidence"] else None
        ev = (f"all {len(res['evidence'])} values <= 1e-9 rel.; worst {_cell(evidence)}"
              if evidence and all(r["passed"] for r in res["evidence"]) else
              (_cell(evidence) + " (misses)" if evidence else ""))
        lines.append(f"| {res['case']} | {res['step']} | {res['dtype']} | **{res['status']}** | "
                     f"{_cell(worst)} | {worst['bar'] if worst else ''} | {ev} |")
    notes = sorted({n for res in results for n in res["notes"]})
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    path = out / f"REPORT_{size}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=None)
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", nargs="*", default=None, help="subset of steps to run")
    parser.add_argument("--allow-rounding", action="store_true")
    args = parser.parse_args(argv)
    start = time.time()
    codes, results = [], []
    for case in resolve_cases(args.model):
        for step, main_fn, extra, dtype in STEPS:
            if args.steps and step not in args.steps:
                continue
            argv_step = ["--model", case.name, "--size", args.size, "--out", str(args.out), *extra]
            codes.append(main_fn(argv_step))
            stem = result_stem(case.name, args.size, dtype)
            results.append(json.loads((args.out / step / f"{stem}_result.json").read_text()))
    report = write_report(args.out, args.size, results, time.time() - start)
    print(f"report: {report}")
    code = combine_exit_codes(codes)
    return 0 if code == EXIT_ROUNDING and args.allow_rounding else code


if __name__ == "__main__":
    raise SystemExit(main())
