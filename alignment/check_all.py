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
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from . import (
    check_backward,
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


def write_report(out: Path, size: str, results: List[Dict], seconds: float | None) -> Path:
    how = (f"Command: `python -m alignment.check_all --size {size}` ({seconds / 60:.1f} min). "
           if seconds is not None else
           f"Collected (`--from-results`) from the result files of `python -m alignment.check_<step> --size {size}`. ")
    lines = [f"# Alignment report ({size})", "",
             how +
             "Columns: worst value by max|diff|/max|ref| — max|diff| / mean|diff| (max|ref|).", "",
             "| case | step | dtype | status | worst: max / mean diff | bar | float64 evidence |",
             "|---|---|---|---|---|---|---|"]
    for res in results:
        worst = _worst(res["rows"])
        evidence = _worst(res["evidence"]) if res["evidence"] else None
        ev = (f"all {len(res['evidence'])} values <= 1e-9 rel.; worst {_cell(evidence)}"
              if evidence and all(r["passed"] for r in res["evidence"]) else
              (_cell(evidence) + " (misses)" if evidence else ""))
        acc = res.get("accuracy") or {}
        if acc.get("missed_rows_compared"):
            ev += (f"; float32 vs float64, worst: torch {acc['torch32_worst_rel_error']:.1e}, Paddle "
                   f"{acc['paddle32_worst_rel_error']:.1e} (Paddle at least as close in "
                   f"{acc['paddle32_at_least_as_close']}/{acc['missed_rows_compared']} missed values)")
        lines.append(f"| {res['case']} | {res['step']} | {res['dtype']} | **{res['status']}** | "
                     f"{_cell(worst)} | {worst['bar'] if worst else ''} | {ev} |")
    notes = sorted({n for res in results for n in res["notes"]})
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    path = out / f"REPORT_{size}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def update_readme(readme: Path, size: str, report: str) -> None:
    """Replace ``<!-- alignment:<size>:start -->`` .. ``<!-- alignment:<size>:end -->`` with the report."""
    start, end = f"<!-- alignment:{size}:start -->", f"<!-- alignment:{size}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: markers {start} / {end} not found")
    body = report.split("\n", 2)[2]  # drop the report's own title
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{body.strip()}\n{end}{rest.split(end, 1)[1]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=None)
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", nargs="*", default=None, help="subset of steps to run")
    parser.add_argument("--allow-rounding", action="store_true")
    parser.add_argument("--full-evidence", action="store_true",
                        help="keep every compared array in the reprod_log files (see alignment.harness)")
    parser.add_argument("--from-results", action="store_true",
                        help="do not run anything: build the report from the result files the checks wrote")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also replace the README section between the alignment markers with the report")
    args = parser.parse_args(argv)
    if args.full_evidence:
        os.environ["ALIGN_EVIDENCE"] = "full"
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
                codes.append(main_fn(argv_step))
                result = json.loads(path.read_text())
            results.append(result)
    report = write_report(args.out, args.size, results, None if args.from_results else time.time() - start)
    print(f"report: {report}")
    if args.readme:
        update_readme(args.readme, args.size, report.read_text())
    code = combine_exit_codes(codes)
    return 0 if code == EXIT_ROUNDING and args.allow_rounding else code


if __name__ == "__main__":
    raise SystemExit(main())
