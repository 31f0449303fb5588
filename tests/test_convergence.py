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


def test_every_case_has_a_training_alignment():
    assert SPEC_CASES == sorted(CASES)
    assert CI_CASES <= set(SPEC_CASES)


@pytest.mark.parametrize("case", [c if c in CI_CASES else pytest.param(c, marks=pytest.mark.full) for c in SPEC_CASES])
def test_small_convergence(tmp_path, case):
    env = {**os.environ, "GLOG_minloglevel": "2"}
    done = subprocess.run([sys.executable, "-m", "alignment.check_convergence", "--model", case, "--size", "small",
                           "--out", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
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
                              "--image", "32", "--batch_size", "2", "--iters", "2"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["iterations"] == 2 and report["data"]["size"] == 32 and report["data"]["num_train"] == 4
    assert len(report["evals"]) >= 1 and report["final"] == report["evals"][-1][1]
    assert report["meets_chance_bar"] == (report["above_chance"] >= 0.10)
    with pytest.raises(SystemExit, match="not a case with a training-alignment spec"):
        probe_recipe.main(["--case", "no_such_case"])
