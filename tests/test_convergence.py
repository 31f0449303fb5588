"""Training alignment to the end (``alignment/check_convergence.py``) at size small, every case, as CI runs it.

Each case trains both frameworks from the same weights on a generated dataset: the float64 run must agree to
1e-8 (every logged loss, the lr, the final parameters) -- or, where the recipe itself amplifies a rounding-sized
difference, separate no earlier than torch separates from itself; the float32 runs (3 seeds) must agree
within the seed spread. Size small is too short to learn, so its chance margin is reported only (bar at size
full). Each case runs in its own process (several GB of float64 ResNets must not accumulate in the test
process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from alignment.cases import CASES
from alignment.convergence import chance_level
from alignment.harness import EXIT_PASS, EXIT_ROUNDING

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_CASES = sorted(name for name, case in CASES.items() if case.convergence is not None)
# One case per model family in the default suite (CI: ~6 of its minutes); the other variants share their
# family's training code path and run with ``pytest --full`` and in ``python -m alignment.check_all --size small``
# (whose results the README table shows).
CI_CASES = {"danet_r50", "dasnet_v2", "factseg_r50", "lsnet_diffFPN"}
PARALLEL_CASE = "lsnet_diffFPN"  # runs with --jobs 2 (CI has 2 cores)


def test_every_case_has_a_training_alignment():
    assert SPEC_CASES == sorted(CASES)
    assert CI_CASES <= set(SPEC_CASES)


@pytest.mark.parametrize("case", [c if c in CI_CASES else pytest.param(c, marks=pytest.mark.full) for c in SPEC_CASES])
def test_small_convergence(tmp_path, case):
    env = {**os.environ, "GLOG_minloglevel": "2"}
    jobs = ["--jobs", "2"] if case == PARALLEL_CASE else []
    done = subprocess.run([sys.executable, "-m", "alignment.check_convergence", "--model", case, "--size", "small",
                           "--out", str(tmp_path), *jobs], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode in (EXIT_PASS, EXIT_ROUNDING), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "convergence" / f"{case}_small_float32_result.json").read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["float64.lr"]["passed"]  # the schedules are identical at every iteration
    assert "float64.divergence_onset" in rows and rows["float64.divergence_onset"]["passed"]
    assert rows[next(n for n in rows if n.startswith("float32.mean_difference"))]["passed"]
    for side in ("paddle", "torch"):
        assert len(result["accuracy"]["finals"][side]) == 3
    assert (tmp_path / "convergence" / f"{case}_small_curves.png").stat().st_size > 10_000
    if done.returncode == EXIT_ROUNDING:  # only the amplification of rounding may miss the float64 bar
        assert result["status"] == "rounding"
    if case == PARALLEL_CASE:
        assert_worker_runs_equal_in_process_runs(case, tmp_path)


def assert_worker_runs_equal_in_process_runs(case: str, out) -> None:
    """``--jobs 2`` ran every training run in a spawned one-thread worker: two of them rerun here, in this
    process at one thread, give the same numbers (the worker's initial weights, data and seeds are its own)."""
    import torch

    from alignment.convergence import generate, training_run

    runs = json.loads((out / "convergence" / f"{case}_small_runs.json").read_text())
    spec = CASES[case].convergence
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = generate(spec, spec.sizes["small"], str(out / "data"))
        again64 = training_run(CASES[case], "small", root, "float64", "torch")
        again32 = training_run(CASES[case], "small", root, "float32", "torch", seed=1)
    finally:
        torch.set_num_threads(threads)
    assert again64["losses"] == runs["float64"]["torch"]["losses"]
    assert again32["losses"] == runs["float32"]["torch"][1]["losses"]
    assert [list(e) for e in again32["evals"]] == runs["float32"]["torch"][1]["evals"]


def test_chance_level_is_the_constant_predictor(tmp_path):
    """The chance bar's reference: on a generated CDD, F1 of 'every pixel changed' = 2p / (1 + p)."""
    from alignment.convergence import generate

    spec = CASES["lsnet_diffFPN"].convergence
    root = generate(spec, spec.sizes["small"], str(tmp_path / "cdd"))
    chance = chance_level(spec, root)
    p = float(chance["rule"].split("(")[1].split("%")[0]) / 100
    assert chance["value"] == pytest.approx(2 * p / (1 + p), abs=2e-3)


def test_recipe_probe_runs_the_torch_side_and_reports_the_chance_bar(capsys):
    """alignment.probe_recipe: the torch side of check_convergence with the data / length overridden (tiny)."""
    from alignment import probe_recipe

    assert probe_recipe.main(["--case", "lsnet_diffFPN", "--size", "small", "--num_train", "4", "--num_val", "2",
                              "--image", "32", "--batch_size", "2", "--iters", "2", "--buildings", "2", "4",
                              "--building_size", "0.2", "0.3", "--no_season_shift"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["iterations"] == 2 and report["data"]["size"] == 32 and report["data"]["num_train"] == 4
    assert report["data"]["buildings"] == [2, 4] and report["data"]["season_shift"] is False
    assert 0.0 <= report["initial"] <= 1.0
    assert len(report["evals"]) >= 1 and report["final"] == report["evals"][-1][1]
    assert report["meets_chance_bar"] == (report["above_chance"] >= 0.10)
    with pytest.raises(SystemExit, match="not a case with a training-alignment spec"):
        probe_recipe.main(["--case", "no_such_case"])


def test_training_table_rows_say_how_many_runs_ran_at_a_time_and_where():
    """check_all's training table: one row per case; the wall time says when --jobs ran runs side by side
    (from the result's accuracy, or the float32 note of a result written before the field existed) and the
    machine where the result recorded it."""
    from alignment.check_all import training_table

    def result(case, accuracy_jobs=None, note_jobs=None, machine=None):
        accuracy = {"finals": {"paddle": [0.40, 0.42, 0.44], "torch": [0.41, 0.43, 0.45]}, "chance": 0.23,
                    "metric": "max_f", "total_iters": 160, "float64_iters": 200, "seconds": 600.0}
        if accuracy_jobs is not None:
            accuracy["jobs"] = accuracy_jobs
        if machine is not None:
            accuracy["machine"] = machine
        notes = [f"float32: ...; whole case 600 s with {note_jobs} run(s) at a time"] if note_jobs else []
        rows = [{"name": "float64.loss.loss", "max_diff": 1e-12},
                {"name": "float64.final_parameters", "max_diff": 2e-9}]
        return {"step": "convergence", "case": case, "status": "pass", "accuracy": accuracy, "rows": rows,
                "notes": notes}

    nudged = result("e", accuracy_jobs=2, machine="Some CPU, 2 cores")
    nudged["evidence"] = [{"name": "floor.loss.loss", "max_diff": 3e-2}, {"name": "floor.final_parameters",
                                                                         "max_diff": 1e-1},
                          {"name": "paddle_vs_nudged.loss", "max_diff": 2.7e-7}]
    table = training_table([result("a", accuracy_jobs=2), result("b", note_jobs=2), result("c", accuracy_jobs=1),
                            result("d"), nudged,
                            result("f", machine="Some CPU, 2 cores"), {"step": "forward"}], "full").splitlines()
    assert len(table) == 2 + 6
    assert table[2].startswith("| a | 160 / 200 | max_f | 0.4200 +- 0.0200") and "1.0e-12 / 2.0e-09" in table[2]
    assert table[2].endswith("| 10.0 min (2 runs at a time) |") and table[3].endswith("| 10.0 min (2 runs at a time) |")
    assert table[4].endswith("| 10.0 min |") and table[5].endswith("| 10.0 min |")
    assert table[6].endswith("| 10.0 min (2 runs at a time; Some CPU, 2 cores) |")
    assert "(torch vs torch nudged 1e-15: 3.0e-02 / 1.0e-01; Paddle vs nudged torch, losses: 2.7e-07)" in table[6]
    assert table[7].endswith("| 10.0 min (Some CPU, 2 cores) |")


def test_machine_summary_names_the_cpu_and_cores(monkeypatch):
    """The model name line of /proc/cpuinfo; without a readable /proc/cpuinfo, platform's name or a word
    that says it is unknown (never an exception from a report writer)."""
    import os
    import platform
    from pathlib import Path

    from rsrepro import machine

    cpuinfo = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU @ 2.0GHz\nflags\t: fpu\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: cpuinfo)
    assert machine.cpu_name() == "Example CPU @ 2.0GHz"
    assert machine.machine_summary() == f"Example CPU @ 2.0GHz, {os.cpu_count()} cores"

    def unreadable(self, *a, **k):
        raise OSError("no /proc here")

    monkeypatch.setattr(Path, "read_text", unreadable)
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert machine.cpu_name() == "unknown CPU"


def test_a_failed_parallel_run_fails_the_case_at_once(tmp_path):
    """--jobs 2: a run that raises in its worker process raises here, with its message, without the queued
    runs being trained first."""
    import time

    from alignment.convergence import training_runs

    start = time.perf_counter()
    with pytest.raises(Exception, match="no_such_data"):
        training_runs(CASES["lsnet_diffFPN"], "small", str(tmp_path / "no_such_data"), jobs=2, progress=lambda s: None)
    assert time.perf_counter() - start < 120


def test_paddle_vs_nudged_row_says_which_branch_paddle_took():
    """torch jumps at iteration 3 (a tie went the other way); Paddle and the nudged torch run stay together:
    the evidence row is within 1e-8 for the whole run, its note says 'never'."""
    from alignment.check_convergence import onset_row, paddle_vs_nudged_row

    def run(losses):
        return {"losses": [{"loss": v} for v in losses]}

    same = [1.0, 0.9, 0.8, 0.7, 0.6]
    jumped = [1.0, 0.9, 0.8 * (1 + 1e-6), 0.7 * (1 + 1e-4), 0.6 * (1 + 1e-3)]
    runs = {"torch": run(jumped), "paddle": run([v * (1 + 1e-12) for v in same]), "floor": run(same)}
    row = paddle_vs_nudged_row(runs)
    assert row.name == "paddle_vs_nudged.loss" and row.passed and row.max_diff < 1e-11
    assert row.note.endswith("first > 1e-8 never")
    onset = onset_row(runs)
    assert onset.max_diff == 3 and onset.ref_max == 3 and onset.passed
    runs["paddle"] = run(jumped)  # Paddle took torch's branch instead
    row = paddle_vs_nudged_row(runs)
    assert not row.passed and row.note.endswith("first > 1e-8 at iteration 3")


def test_rescore_recomputes_the_evidence_from_the_saved_runs(tmp_path):
    """--rescore: no training; the onset row and the Paddle-vs-nudged-torch evidence come from runs.json,
    the rest of the saved result is kept."""
    import shutil
    from pathlib import Path

    from alignment.check_convergence import main

    src = Path(REPO) / "alignment" / "results" / "convergence"
    (tmp_path / "convergence").mkdir()
    for name in ("dasnet_v2_small_runs.json", "dasnet_v2_small_float32_result.json"):
        shutil.copy(src / name, tmp_path / "convergence" / name)
    before = json.loads((src / "dasnet_v2_small_float32_result.json").read_text())
    main(["--model", "dasnet_v2", "--size", "small", "--out", str(tmp_path), "--rescore", "--allow-rounding"])
    after = json.loads((tmp_path / "convergence" / "dasnet_v2_small_float32_result.json").read_text())
    assert after["accuracy"]["finals"] == before["accuracy"]["finals"]
    names = [r["name"] for r in after["evidence"]]
    assert names.count("paddle_vs_nudged.loss") == 1 and "floor.loss.loss" in names
    assert any(r["name"] == "float64.divergence_onset" for r in after["rows"])
