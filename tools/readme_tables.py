"""The README tables, generated from the committed result files into README.md AND README_cn.md.

    python tools/readme_tables.py --write     # regenerate every table in both files
    python tools/readme_tables.py --check     # exit 1 if a table in either file is stale (tests/test_readme_tables.py)

A table lives between ``<!-- generated:<name>:start -->`` and ``<!-- generated:<name>:end -->`` in each file. Both
files get the same text from the same function, so the English and the Chinese README never drift:

- ``models``: the models, papers, official code, checkpoint compatibility, alignment cases, pipeline;
- ``alignment-small`` / ``alignment-full``: ``alignment/results/<step>/*_result.json`` (``python -m
  alignment.check_all --size small|full --out alignment/results``);
- ``training-alignment``: ``alignment/results/convergence/*_full_float32_result.json`` (``python -m
  alignment.check_convergence --size full --out alignment/results``);
- ``speed``: ``benchmarks/results/speed_t1.json`` and ``speed_t2.json`` (``python benchmarks/speed.py --threads N``);
- ``tipc``: ``test_tipc/results.json`` (``python tools/readme_tables.py --tipc-from test_tipc/output`` after the
  chains ran).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Sequence

REPO = Path(__file__).resolve().parents[1]
FILES = ("README.md", "README_cn.md")
RESULTS = REPO / "alignment" / "results"

MODELS = [
    ("DANet (R50, R101 multi-grid)", "Fu et al., CVPR 2019", "junfu1115/DANet (2019 tree)",
     "yes (`danet_r50`, `danet_r101_mg`)", "`danet_r50`, `danet_r101_mg`",
     "train / eval (multi-scale, flip, sliding) / predict / export (Paddle, ONNX) / infer; `configs/danet/`"),
    ("FactSeg (R50)", "Ma et al., TGRS 2022", "Junjue-Wang/FactSeg", "yes (`factseg`, 33,446,609 params)",
     "`factseg_r50` (+ `check_factseg_modes`)",
     "train / eval (official 896/512 windows, streamed) / predict / export (Paddle, ONNX) / infer; CP loss "
     "(PyLayer / in-place / concat), iSAID data + patch tool; `configs/factseg/`"),
    ("LSNet (diffFPN, thin_diffFPN, denseFPN)", "Liu et al., IGARSS 2022", "qaz670756/LSNet", "yes (all three)",
     "`lsnet_diffFPN`, `lsnet_thin_diffFPN`, `lsnet_denseFPN`",
     "train / eval (argmax P/R/F1/OA/IoU + sweep) / predict / export (Paddle, ONNX) / infer; hybrid loss, CDD "
     "`OUT_binary` (Otsu tool), official augmentation; `configs/lsnet/` (three variants)"),
    ("DASNet, DASNet-V2 (+ PAM/CAM ablations)", "Chen et al., JSTARS 2020; DASNet-V2 fork",
     "lehaifeng/DASNet, silence-tang/DASNet-V2", "yes (`dasnet`, `dasnet_v2`)",
     "`dasnet_r50`, `dasnet_v2`, `dasnet_v2_nopam_nocam`",
     "train / eval (distance threshold sweep, max-F, PR curve) / predict / export (Paddle, ONNX) / infer (BGR "
     "per-time means in deploy.yml); contrastive losses (official / weighted / cosine / WDMC / batch-balanced); "
     "CDD + LEVIR-CD; `configs/dasnet*/` incl. ablations"),
]


def models_table() -> str:
    lines = ["| model | paper | official code | torch keys = official | alignment cases | pipeline |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in MODELS]
    return "\n".join(lines)


def _alignment(size: str) -> Callable[[], str]:
    def table() -> str:
        from alignment.check_all import collect, steps_table

        results = [r for r in collect(RESULTS, size) if r["step"] != "convergence"]
        if not results:
            return f"(no result files for size {size} under alignment/results yet)"
        counts: Dict[str, int] = {}
        for res in results:
            counts[res["status"]] = counts.get(res["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return (f"{len(results)} results ({summary}); from `alignment/results/<step>/*_{size}_*_result.json`.\n\n"
                + steps_table(results, shapes=size == "full"))

    return table


def training_table() -> str:
    from alignment.check_all import collect
    from alignment.check_all import training_table as render

    results = [r for r in collect(RESULTS, "full", steps=["convergence"])]
    if not results:
        return "(no training-alignment results under alignment/results/convergence yet)"
    for res in results:  # links relative to the repository (the README's folder)
        curves = (res.get("accuracy") or {}).get("curves")
        if curves:
            res["accuracy"]["curves"] = str(REPO / os.path.relpath(curves, REPO)) if os.path.isabs(curves) else curves
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        table = render(results, "full")
    finally:
        os.chdir(cwd)
    from alignment.cases import CASES

    missing = sorted(set(CASES) - {res["case"] for res in results})
    table += "".join(f"\n| {case} | not run at size full | | | | | | | | |" for case in missing)
    return table


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _rel(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def speed_table(results_dir: Path | None = None) -> str:
    """Inference at 1 and 2 threads: torch eager and torch -> ONNX Runtime (the peers), Paddle dygraph, Paddle
    Inference (deployment path), Paddle2ONNX in ONNX Runtime / OpenVINO; the fastest exact Paddle deployment's
    ratio to both peers."""
    rows = ["| model | input | threads | torch eager | torch -> ONNX -> ORT | Paddle dygraph | Paddle Inference "
            "(oneDNN, deploy) | Paddle2ONNX -> ORT | Paddle2ONNX -> OpenVINO | fastest Paddle deployment | "
            "vs torch eager | vs torch-ORT | its output vs torch (rel. L2) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    found = False
    for threads in (1, 2):
        path = (results_dir or REPO / "benchmarks" / "results") / f"speed_t{threads}.json"
        if not path.is_file():
            continue
        found = True
        data = json.loads(path.read_text())
        for name, r in data["results"].items():
            s = r["seconds"]
            verdicts = r.get("exactness") or {}
            exact = {k: verdicts.get(k, {}).get("exact", True) for k in ("infer_deploy", "onnx_ort", "onnx_openvino")}
            deploy = {k: s[k] for k in exact if k in s and exact[k]}
            best = min(deploy, key=deploy.get) if deploy else None
            label = {"infer_deploy": "Paddle Inference", "onnx_ort": "ONNX Runtime", "onnx_openvino": "OpenVINO"}
            vs_eager = f"**{deploy[best] / s['torch']:.2f}x**" if best else "-"
            vs_ort = f"**{deploy[best] / s['torch_onnx_ort']:.2f}x**" if best and "torch_onnx_ort" in s else "-"
            cells = [name, "+".join("x".join(map(str, shape)) for shape in r["inputs"]), str(threads),
                     _seconds(s.get("torch")), _seconds(s.get("torch_onnx_ort")), _seconds(s.get("paddle")),
                     *[_seconds(s.get(k)) + ("" if ok else " (not exact)") for k, ok in exact.items()],
                     label.get(best, "-"), vs_eager, vs_ort, _rel((r.get("rel_l2_vs_torch") or {}).get(best))]
            rows.append("| " + " | ".join(cells) + " |")
    if not found:
        return "(no benchmarks/results/speed_t1.json / speed_t2.json yet)"
    return "\n".join(rows)


def train_speed_table() -> str:
    rows = ["| model | threads | train step torch | train step Paddle | Paddle / torch | Paddle `to_static` | "
            "`to_static` / torch |", "|---|---:|---:|---:|---:|---:|---:|"]
    found = False
    for threads in (1, 2):
        path = REPO / "benchmarks" / "results" / f"speed_t{threads}.json"
        if not path.is_file():
            continue
        for name, r in json.loads(path.read_text())["results"].items():
            s = r["seconds"]
            if "train_torch" not in s:
                continue
            found = True
            static = s.get("train_paddle_static")
            rows.append(f"| {name} | {threads} | {_seconds(s['train_torch'])} | {_seconds(s.get('train_paddle'))} | "
                        f"{s.get('train_paddle', float('nan')) / s['train_torch']:.2f}x | {_seconds(static)} | "
                        + (f"{static / s['train_torch']:.2f}x |" if static else "- |"))
    return "\n".join(rows) if found else "(no training-step timings yet)"


def _short(command: str) -> str:
    """``tools/infer.py --backend openvino --cpu_threads 1`` out of a whole chain command."""
    words = command.split()
    tool = next((w for w in words if w.startswith("tools/")), "?")
    keep = [f"{w} {words[i + 1]}" for i, w in enumerate(words[:-1]) if w in ("--backend", "--cpu_threads")]
    return " ".join([tool, *keep])


def tipc_table() -> str:
    path = REPO / "test_tipc" / "results.json"
    if not path.is_file():
        return "(no test_tipc/results.json yet)"
    data = json.loads(path.read_text())
    rows = ["| model (test_tipc/configs/...) | mode | commands | succeeded | status | failed commands: why |",
            "|---|---|---:|---:|---|---|"]
    for model, r in sorted(data["models"].items()):
        status = "**pass**" if r["succeeded"] == r["commands"] and r["commands"] else "**fail**"
        by_reason: Dict[str, List[str]] = {}
        for failure in r.get("failed", []):
            by_reason.setdefault(failure["reason"], []).append(f"`{_short(failure['command'])}`")
        why = "; ".join(f"{', '.join(cmds)}: {reason.replace('|', chr(92) + '|')}"
                        for reason, cmds in by_reason.items())
        rows.append(f"| {model} | {r['mode']} | {r['commands']} | {r['succeeded']} | {status} | {why or '-'} |")
    return "\n".join(rows)


SECTIONS: Dict[str, Callable[[], str]] = {
    "models": models_table,
    "alignment-small": _alignment("small"),
    "alignment-full": _alignment("full"),
    "training-alignment": training_table,
    "speed": speed_table,
    "train-speed": train_speed_table,
    "tipc": tipc_table,
}


def _pattern(name: str) -> re.Pattern:
    start, end = f"<!-- generated:{re.escape(name)}:start -->", f"<!-- generated:{re.escape(name)}:end -->"
    return re.compile(rf"{start}(.*?){end}", re.S)


def update(path: Path, write: bool) -> List[str]:
    """The sections of ``path`` whose content differs from the generated one (rewritten when ``write``). A
    section whose markers are missing counts as stale."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    stale = []
    for name, render in SECTIONS.items():
        pattern = _pattern(name)
        match = pattern.search(text)
        body = render().strip()
        if match is None:
            stale.append(f"{path.name}: markers of '{name}' missing")
            continue
        if match.group(1).strip() != body:
            stale.append(f"{path.name}: '{name}' is stale")
            start, end = f"<!-- generated:{name}:start -->", f"<!-- generated:{name}:end -->"
            text = text[:match.start()] + f"{start}\n{body}\n{end}" + text[match.end():]
    if write and stale:
        path.write_text(text, encoding="utf-8")
    return stale


def write_all(files: Sequence[str] = FILES) -> List[str]:
    return [s for f in files for s in update(REPO / f, write=True)]


def _failure_reason(command: str) -> str:
    """The first ``error:`` line of a failed chain command's own log (``<--out or --work_dir>.log``)."""
    match = re.search(r"--(?:out|work_dir) (\S+)", command)
    log = REPO / (os.path.splitext(match.group(1))[0] + ".log") if match else None
    if log is None or not log.is_file():
        return "no log"
    errors = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip().startswith("error:")]
    return errors[0][len("error:"):].strip() if errors else "no error line in " + log.name


def summarize_tipc(output: Path, mode: str = "lite_train_lite_infer") -> Path:
    """test_tipc/results.json from the chains' ``results_python.log`` files (with each failure's reason)."""
    models = {}
    for log in sorted(output.glob("*/results_python.log")):
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith("Run ")]
        failed = [ln.split(" - ", 1)[1] for ln in lines if ln.startswith("Run failed")]
        models[log.parent.name] = {"mode": mode, "commands": len(lines), "succeeded": len(lines) - len(failed),
                                   "failed": [{"command": c, "reason": _failure_reason(c)} for c in failed]}
    target = REPO / "test_tipc" / "results.json"
    target.write_text(json.dumps({"models": models}, indent=1) + "\n")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate every table in README.md and README_cn.md")
    group.add_argument("--check", action="store_true", help="exit 1 when a table is stale or missing")
    group.add_argument("--tipc-from", type=Path, help="summarize test_tipc/output/*/results_python.log first")
    args = parser.parse_args(argv)
    if args.tipc_from:
        print(f"wrote {summarize_tipc(args.tipc_from)}")
        return 0
    stale = [s for f in FILES for s in update(REPO / f, write=args.write)]
    for line in stale:
        print(("rewrote " if args.write else "") + line)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
