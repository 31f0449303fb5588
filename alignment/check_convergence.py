"""Step 8 of the reprod workflow, to the end: train both frameworks with the paper's recipe, compare.

    python -m alignment.check_convergence --model lsnet_diffFPN [--size small|full] [--out output/alignment]

For each case with a ``convergence`` spec (``alignment/models/*.py``), on one generated dataset in the real
layout (``alignment/convergence.py`` says what each side runs):

1. float64: both frameworks train the recipe for ``float64_iters`` iterations (augmentation on, dropout
   off, same weights, order and draws). Bar: every logged loss term and the lr at every iteration, and
   every final parameter and BatchNorm running mean, within 1e-8 relative. (Running variances are
   reported, not compared: Paddle updates them with the biased batch variance, torch with the unbiased.)
   Evidence beside it: a second torch run from weights nudged by 1e-15 (the ``floor``): a recipe that
   amplifies rounding (small batches, BatchNorm, deep nets from scratch) separates two runs of ONE framework
   too. When Paddle and torch separate no earlier than half as late as torch from itself (row
   ``float64.divergence_onset``), the float64 miss is that amplification, not a different computation.
2. float32: per seed (data order + initialisation), each framework trains the whole shortened recipe and
   evaluates with its own protocol (the paper's metric: mIoU, max-F or F1). Bars: |mean Paddle - mean
   torch| <= max(0.5 points, 2 x the larger seed std), and (size full) each framework's mean at least 10
   points above the chance level of the same val set (a predictor that ignores the image). Size small runs
   the same code for a few iterations (CI): too short to learn, so its chance margin is reported only.

``--jobs N`` runs N of a case's training runs at a time (separate processes, one math thread each;
``convergence.training_runs``): the runs are independent, so the results are the same with any N, and a
2-core machine finishes a case in about half the time with ``--jobs 2``.

Status: pass; rounding (float64 identical, only the float32 mean difference misses: float32 rounding
amplified by training); fail. Writes, under ``<out>/convergence/``: ``<case>_<size>_float32_result.json``
and ``_diff.log``; the float64 loss trajectories as a reprod_log pair (``<case>_<size>_float64_torch.npy`` /
``_paddle.npy``); ``<case>_<size>_runs.json`` (every number); ``<case>_<size>_curves.png`` (loss and metric
curves of both frameworks, every seed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from rsrepro.machine import machine_summary

from .cases import AlignCase, resolve_cases
from .convergence import chance_level, generate, relative_max, training_runs
from .harness import (
    DEFAULT_OUT,
    EXIT_FAIL,
    EXIT_PASS,
    EXIT_ROUNDING,
    Row,
    StepResult,
    combine_exit_codes,
    result_stem,
    save_reprod_pair,
    write_result,
)

FLOAT64_TRAIN_REL = 1e-8
METRIC_POINTS = 0.005  # 0.5 points on the 0-1 scale
CHANCE_MARGIN = 0.10  # 10 points


class ConvergenceResult(StepResult):
    """Status: pass (every bar); rounding (a float64 row misses 1e-8, but Paddle and torch stay within 1e-8 of
    each other at least half as many iterations as torch stays within 1e-8 of itself after a 1e-15 nudge --
    the ``float64.divergence_onset`` row: the recipe amplifies rounding, and both frameworks separate exactly
    as fast as one framework from itself -- and each framework is far above chance); fail otherwise."""

    def finalize(self) -> ConvergenceResult:
        onset = next((r for r in self.rows if r.name == "float64.divergence_onset"), None)
        f64 = [r for r in self.rows if r.name.startswith("float64.") and r is not onset]
        f32 = [r for r in self.rows if not r.name.startswith("float64.")]
        chance_ok = all(r.passed for r in f32 if r.name.startswith("float32.above_chance"))
        if all(r.passed for r in f64) and all(r.passed for r in f32):
            self.status = "pass"
        elif onset is not None and onset.passed and chance_ok:
            self.status = "rounding"
        else:
            self.status = "fail"
        return self


def _onset(ref: List[float], test: List[float], bar: float) -> int:
    """The first iteration (1-based) whose relative difference exceeds ``bar``; len + 1 when none does."""
    ref_a, test_a = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    over = np.abs(ref_a - test_a) / np.maximum(np.abs(ref_a), 1e-300) > bar
    return int(np.argmax(over)) + 1 if over.any() else len(ref_a) + 1


def onset_row(run: Dict[str, Any]) -> Row:
    """When Paddle-vs-torch and torch-vs-nudged-torch first separate by more than 1e-8 in the total loss."""
    torch_loss = [v["loss"] for v in run["torch"]["losses"]]
    paddle = _onset(torch_loss, [v["loss"] for v in run["paddle"]["losses"]], FLOAT64_TRAIN_REL)
    floor = _onset(torch_loss, [v["loss"] for v in run["floor"]["losses"]], FLOAT64_TRAIN_REL)
    total = len(torch_loss)

    def text(n: int) -> str:
        return f"iteration {n}" if n <= total else f"never in {total}"

    return Row("float64.divergence_onset", float(paddle), float(paddle), float(floor), float(floor),
               "Paddle-vs-torch first > 1e-8 no earlier than half the torch-vs-nudged-torch onset",
               bool(paddle >= 0.5 * floor),
               note=f"loss first > 1e-8 relative: Paddle vs torch {text(paddle)}, torch vs torch nudged by 1e-15 "
                    f"{text(floor)}")


def _per_iteration_row(name: str, ref: List[float], test: List[float], bar: float) -> Row:
    """max_diff / mean_diff: the worst / mean relative difference |test_i - ref_i| / |ref_i| over the iterations."""
    ref_a, test_a = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    if ref_a.shape != test_a.shape:
        return Row(name, float("inf"), float("inf"), 0.0, 0.0, f"{len(ref)} vs {len(test)} iterations", False)
    rel = np.abs(ref_a - test_a) / np.maximum(np.abs(ref_a), 1e-300)
    return Row(name, float(rel.max()), float(rel.mean()), float(np.abs(ref_a).max()), float(np.abs(ref_a).mean()),
               f"max_i |diff_i| / |ref_i| <= {bar:g}", bool(rel.max() <= bar),
               note=f"worst at iteration {int(rel.argmax()) + 1} of {len(ref)}")


def paddle_vs_nudged_row(run: Dict[str, Any]) -> Row:
    """Evidence, not a bar: Paddle's float64 loss against the nudged torch run's, per iteration. Where torch
    and nudged torch separate at a single decision (a tie going the other way), this says on which side
    Paddle went: close to the nudged run for the whole run means Paddle took the same branch."""
    nudged = [v["loss"] for v in run["floor"]["losses"]]
    paddle = [v["loss"] for v in run["paddle"]["losses"]]
    row = _per_iteration_row("paddle_vs_nudged.loss", nudged, paddle, FLOAT64_TRAIN_REL)
    onset = _onset(nudged, paddle, FLOAT64_TRAIN_REL)
    row.note += "; first > 1e-8 " + (f"at iteration {onset}" if onset <= len(nudged) else "never")
    return row


def float64_rows(ref_run: Dict[str, Any], test_run: Dict[str, Any], prefix: str = "float64") -> List[Row]:
    """``test_run`` against ``ref_run`` (torch): every logged loss term and the lr per iteration, every final
    parameter and BatchNorm running mean per tensor (max|diff| / max|ref|)."""
    rows = []
    terms = list(ref_run["losses"][0]) if ref_run["losses"] else []
    for term in terms:
        rows.append(_per_iteration_row(f"{prefix}.loss.{term}", [v[term] for v in ref_run["losses"]],
                                       [v.get(term, float("nan")) for v in test_run["losses"]], FLOAT64_TRAIN_REL))
    rows.append(_per_iteration_row(f"{prefix}.lr", ref_run["lr"], test_run["lr"], FLOAT64_TRAIN_REL))
    for kind, select in (("parameters", lambda k: True), ("bn_running_mean", lambda k: k.endswith("._mean"))):
        source_t = ref_run["params"] if kind == "parameters" else ref_run["buffers"]
        source_p = test_run["params"] if kind == "parameters" else test_run["buffers"]
        keys = [k for k in source_t if select(k)]
        missing = [k for k in keys if k not in source_p]
        worst, worst_key, total = 0.0, "", []
        for key in keys:
            if key in missing:
                continue
            test, ref = source_p[key], source_t[key]
            test = test.T if test.ndim == 2 and test.shape != ref.shape else test
            rel = relative_max(test, ref)
            total.append(rel)
            if rel > worst:
                worst, worst_key = rel, key
        rows.append(Row(f"{prefix}.final_{kind}", worst, float(np.mean(total)) if total else 0.0, 1.0, 1.0,
                        f"per tensor max|diff| / max|ref| <= {FLOAT64_TRAIN_REL:g}",
                        bool(worst <= FLOAT64_TRAIN_REL and not missing),
                        note=f"{len(keys)} tensors; worst {worst_key}" + (f"; missing on Paddle: {missing[:3]}"
                                                                          if missing else "")))
    return rows


def running_var_note(run: Dict[str, Any]) -> str:
    torch_b, paddle_b = run["torch"]["buffers"], run["paddle"]["buffers"]
    keys = [k for k in torch_b if k.endswith("._variance") and k in paddle_b]
    worst = max((relative_max(paddle_b[k], torch_b[k]) for k in keys), default=0.0)
    return (f"BatchNorm running variances (not a bar): worst relative difference {worst:.1e} over {len(keys)} "
            "tensors; Paddle updates them with the biased batch variance, torch with the unbiased one (N/(N-1))")


def float32_rows(spec: Any, runs: Dict[str, Any], chance: Dict[str, Any], size: str) -> List[Row]:
    finals = {side: np.array([r["final"] for r in runs["runs"][side]], np.float64) for side in ("paddle", "torch")}
    means = {side: float(v.mean()) for side, v in finals.items()}
    stds = {side: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for side, v in finals.items()}
    allowed = max(METRIC_POINTS, 2 * max(stds.values()))
    difference = abs(means["paddle"] - means["torch"])
    rows = [Row(f"float32.mean_difference.{spec.metric}", difference, difference, means["torch"], means["torch"],
                "|mean Paddle - mean torch| <= max(0.5 points, 2 x larger seed std)", bool(difference <= allowed),
                note=(f"Paddle {means['paddle']:.4f} +- {stds['paddle']:.4f}, torch {means['torch']:.4f} +- "
                      f"{stds['torch']:.4f} over {len(finals['torch'])} seeds; allowed {allowed:.4f}"))]
    for side in ("paddle", "torch"):
        margin = means[side] - chance["value"]
        if size == "small":  # a few iterations cannot learn the task; the margin is shown, the bar is full size's
            rows.append(Row(f"float32.chance_margin.{side}", margin, margin, chance["value"], chance["value"],
                            "reported only at size small (too short to learn); bar at size full", True,
                            note=f"chance {chance['value']:.4f}: {chance['rule']}"))
            continue
        rows.append(Row(f"float32.above_chance.{side}", margin, margin, chance["value"], chance["value"],
                        f"mean - chance >= {CHANCE_MARGIN:g}", bool(margin >= CHANCE_MARGIN),
                        note=f"chance {chance['value']:.4f}: {chance['rule']}"))
    return rows


def plot_curves(case: AlignCase, runs: Dict[str, Any], chance: Dict[str, Any], path: Path, title: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rsrepro.fileio import atomic_save

    spec = case.convergence
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colors = {"paddle": "tab:blue", "torch": "tab:orange"}
    styles = {"paddle": "-", "torch": "--"}
    for side in ("paddle", "torch"):
        for index, run in enumerate(runs["runs"][side]):
            losses = [v["loss"] for v in run["losses"]]
            label = f"{'Paddle' if side == 'paddle' else 'torch'}" if index == 0 else None
            ax.plot(range(1, len(losses) + 1), losses, styles[side], color=colors[side], alpha=0.6, linewidth=1,
                    label=label)
            if run["evals"]:
                iters, values = zip(*run["evals"])
                ax2.plot(iters, values, styles[side], marker="o", color=colors[side], alpha=0.7, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (every seed)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    ax2.axhline(chance["value"], color="gray", linestyle=":", label="chance")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel(f"val {spec.metric} (every seed)")
    ax2.legend(fontsize=8)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return str(atomic_save(path, lambda tmp: fig.savefig(tmp, format="png")))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k not in ("params", "buffers")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def run_case(case: AlignCase, args: argparse.Namespace) -> ConvergenceResult:
    spec = case.convergence
    size = spec.sizes[args.size]
    start = time.perf_counter()
    out = Path(args.out) / "convergence"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convergence_data_") as tmp:
        root = generate(spec, size, str(Path(tmp) / "data"))
        chance = chance_level(spec, root)
        f64, f32 = training_runs(case, args.size, root, with_float64=not args.skip_float64, jobs=args.jobs,
                                 progress=lambda s: print(s, flush=True))
    rows: List[Row] = []
    notes = []
    evidence: List[Row] = []
    if f64 is not None:
        rows += float64_rows(f64["torch"], f64["paddle"])
        rows.append(onset_row(f64))
        evidence = float64_rows(f64["torch"], f64["floor"], prefix="floor") + [paddle_vs_nudged_row(f64)]
        notes.append(running_var_note(f64))
        notes.append("floor: torch against torch with every initial weight x (1 + 1e-15), same recipe; how far "
                     "the training itself carries a rounding-sized difference")
        dropouts = f64["paddle"]["dropouts_disabled"]
        if spec.float64_loss:
            notes.append(f"float64 run with loss options {spec.float64_loss} on both sides: {spec.float64_loss_reason}")
        notes.append(f"float64: {size.float64_iters} iterations, batch {size.float64_batch or size.batch_size}"
                     + (f", {dropouts} dropout layers off on both sides" if dropouts else "")
                     + f"; Paddle {f64['paddle']['seconds']:.0f} s, torch {f64['torch']['seconds']:.0f} s")
        stem = result_stem(case.name, args.size, "float64")
        save_reprod_pair(Path(args.out), "convergence", stem,
                         {k: np.array([v[k] for v in f64["torch"]["losses"]]) for k in f64["torch"]["losses"][0]},
                         {k: np.array([v.get(k, np.nan) for v in f64["paddle"]["losses"]])
                          for k in f64["torch"]["losses"][0]})
    rows += float32_rows(spec, f32, chance, args.size)
    machine = machine_summary()
    seconds = {side: [r["seconds"] for r in f32["runs"][side]] for side in ("paddle", "torch")}
    notes.append(f"float32: {f32['total_iters']} iterations x {len(size.seeds)} seeds, batch {size.batch_size}, "
                 f"data {size.data}; wall time per run: Paddle {np.mean(seconds['paddle']):.0f} s, torch "
                 f"{np.mean(seconds['torch']):.0f} s; whole case {time.perf_counter() - start:.0f} s with {args.jobs} "
                 f"run(s) at a time on {machine}")
    curves = plot_curves(case, f32, chance, out / f"{case.name}_{args.size}_curves.png",
                         f"{case.name} ({args.size}): {f32['total_iters']} iterations, {len(size.seeds)} seeds; "
                         "Paddle solid, torch dashed")
    summary = {"case": case.name, "size": args.size, "metric": spec.metric, "chance": chance,
               "total_iters": f32["total_iters"], "float64_iters": size.float64_iters if f64 else None,
               "batch_size": size.batch_size, "data": size.data, "seeds": list(size.seeds), "curves": curves,
               "float32": _jsonable(f32["runs"]), "float64": _jsonable(f64) if f64 else None,
               "seconds": time.perf_counter() - start, "machine": machine, "jobs": args.jobs}
    (out / f"{case.name}_{args.size}_runs.json").write_text(json.dumps(summary, indent=1, default=float))
    result = ConvergenceResult("convergence", case.name, args.size, "float32", rows, evidence=evidence,
                               notes=notes)
    result.accuracy = {"finals": {side: [r["final"] for r in f32["runs"][side]] for side in ("paddle", "torch")},
                       "chance": chance["value"], "metric": spec.metric, "total_iters": f32["total_iters"],
                       "float64_iters": size.float64_iters if f64 else None, "curves": curves,
                       "seconds": summary["seconds"], "jobs": args.jobs, "machine": summary["machine"]}
    return result


def rescore(case: AlignCase, args: argparse.Namespace) -> ConvergenceResult:
    """The result of an earlier run, its float64 onset row and the Paddle-vs-nudged-torch evidence recomputed
    from ``<case>_<size>_runs.json``."""
    out = Path(args.out) / "convergence"
    runs = json.loads((out / f"{case.name}_{args.size}_runs.json").read_text())
    previous = json.loads((out / f"{result_stem(case.name, args.size, 'float32')}_result.json").read_text())
    rows = [Row(**r) for r in previous["rows"] if r["name"] != "float64.divergence_onset"]
    if runs.get("float64"):
        rows.insert(next((i for i, r in enumerate(rows) if not r.name.startswith("float64.")), len(rows)),
                    onset_row(runs["float64"]))
    evidence = [Row(**r) for r in previous["evidence"] if r["name"] != "paddle_vs_nudged.loss"]
    evidence += [paddle_vs_nudged_row(runs["float64"])] if runs.get("float64") else []
    result = ConvergenceResult("convergence", case.name, args.size, "float32", rows, evidence=evidence,
                               notes=previous["notes"])
    result.accuracy = previous["accuracy"]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=None, help="cases or models (default: every case with a spec)")
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--skip-float64", dest="skip_float64", action="store_true",
                        help="only the float32 runs (the float64 bar is then not checked)")
    parser.add_argument("--allow-rounding", action="store_true")
    parser.add_argument("--jobs", type=int, default=1,
                        help="training runs at a time, each in its own process with one math thread (the runs "
                             "are independent: results do not depend on it); 2 on a 2-core machine")
    parser.add_argument("--rescore", action="store_true",
                        help="re-evaluate the bars from the saved <case>_<size>_runs.json and result files "
                             "(no training)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    cases = [c for c in resolve_cases(args.model) if c.convergence is not None]
    if not cases:
        raise SystemExit("check_convergence: no selected case has a convergence spec")
    codes = []
    for case in cases:
        result = (rescore(case, args) if args.rescore else run_case(case, args)).finalize()
        result.seconds = float(result.accuracy.get("seconds") or 0.0)
        log = write_result(result, args.out)
        print(f"[convergence] {case.name:16s} {args.size:5s} {result.status.upper():8s} -> {log}", flush=True)
        code = {"pass": EXIT_PASS, "rounding": EXIT_ROUNDING}.get(result.status, EXIT_FAIL)
        codes.append(EXIT_PASS if code == EXIT_ROUNDING and args.allow_rounding else code)
    return combine_exit_codes(codes)


if __name__ == "__main__":
    raise SystemExit(main())

