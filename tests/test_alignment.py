"""The alignment checks at `small` size, run in-process as `python -m alignment.check_*` would.

Each check must meet its bar (exit 0). The backward check may instead exit 3 ("rounding": a
float32 miss) only with complete float64 evidence that every value agrees to 1e-9. A last test
breaks the Paddle port on purpose and expects the checks to fail.
"""

from __future__ import annotations

import json

import pytest

from alignment import (
    check_backward,
    check_data,
    check_forward,
    check_loss,
    check_lr,
    check_metric,
    check_train,
)
from alignment.harness import EXIT_FAIL, EXIT_PASS, EXIT_ROUNDING


def _args(case, out, *extra):
    return ["--model", case, "--size", "small", "--out", str(out), *extra]


def _result(out, step, case, dtype):
    return json.loads((out / step / f"{case}_small_{dtype}_result.json").read_text())


@pytest.mark.parametrize("case", ["danet_r50", "danet_r101_mg"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward(tmp_path, case, dtype):
    assert check_forward.main(_args(case, tmp_path, "--dtype", dtype)) == EXIT_PASS
    result = _result(tmp_path, "forward", case, dtype)
    assert (tmp_path / "forward" / f"{case}_small_{dtype}_torch.npy").is_file()
    if dtype == "float64":  # every hooked stage was compared
        assert sum(r["name"].startswith("feat.") for r in result["rows"]) >= 11


@pytest.mark.parametrize("check", [check_loss, check_lr, check_metric, check_data])
def test_cheap_steps(tmp_path, check):
    assert check.main(_args("danet_r50", tmp_path)) == EXIT_PASS


def test_loss_float32_miss_gets_float64_evidence(tmp_path, monkeypatch):
    """A float32 loss miss is rerun in float64 on both sides: status rounding, each side's error named."""
    monkeypatch.setattr(check_loss, "LOSS_REL", 1e-15)  # every non-identical float32 value now misses
    assert check_loss.main(_args("lsnet_diffFPN", tmp_path)) == EXIT_ROUNDING
    result = _result(tmp_path, "loss", "lsnet_diffFPN", "float32")
    missed = [r for r in result["rows"] if not r["passed"]]
    assert missed and all("vs float64 torch" in r["note"] for r in missed)
    assert result["evidence"] and all(r["passed"] for r in result["evidence"])
    assert {r["name"] for r in result["evidence"]} == {r["name"] for r in result["rows"]}
    assert result["accuracy"]["missed_rows_compared"] == len(missed)


def test_backward_danet_r50(tmp_path):
    code = check_backward.main(_args("danet_r50", tmp_path))
    result = _result(tmp_path, "backward", "danet_r50", "float32")
    assert code in (EXIT_PASS, EXIT_ROUNDING)
    losses = [r for r in result["rows"] if r["name"].endswith(".loss")]
    assert len(losses) == 5 and all(r["passed"] for r in losses)
    if code == EXIT_ROUNDING:
        assert result["evidence"] and all(r["passed"] for r in result["evidence"])
        assert len(result["evidence"]) == len(result["rows"])
        acc = result["accuracy"]  # every missed float32 value compared with the float64 truth, both sides
        assert acc["missed_rows_compared"] == sum(not r["passed"] for r in result["rows"])
        assert 0 <= acc["paddle32_at_least_as_close"] <= acc["missed_rows_compared"]


def test_train_danet_r50(tmp_path):
    assert check_train.main(_args("danet_r50", tmp_path)) == EXIT_PASS


@pytest.mark.full
@pytest.mark.parametrize("check", [check_backward, check_train])
def test_heavy_steps_danet_r101(tmp_path, check):
    assert check.main(_args("danet_r101_mg", tmp_path)) in (EXIT_PASS, EXIT_ROUNDING)


def test_a_broken_port_fails(tmp_path, monkeypatch):
    """CAM without the row-max subtraction: the float64 forward check must catch it."""
    import paddle

    from paddle_models.layers import attention

    def wrong_cam(self, x):
        b, c, h, w = x.shape
        flat = x.reshape([b, c, -1])
        attention_map = self.softmax(paddle.bmm(flat, flat.transpose([0, 2, 1])))
        return self.gamma * paddle.bmm(attention_map, flat).reshape([b, c, h, w]) + x

    monkeypatch.setattr(attention.CAM_Module, "forward", wrong_cam)
    assert check_forward.main(_args("danet_r50", tmp_path, "--dtype", "float64")) == EXIT_FAIL
    failed = [r["name"] for r in _result(tmp_path, "forward", "danet_r50", "float64")["rows"] if not r["passed"]]
    assert "feat.head.sc" in failed and "feat.head.sa" not in failed


def test_evidence_digest_keeps_small_arrays_and_summarises_large_ones(tmp_path, monkeypatch):
    import numpy as np
    from reprod_log import ReprodDiffHelper

    from alignment.harness import EVIDENCE_FULL_LIMIT, save_reprod_pair

    monkeypatch.delenv("ALIGN_EVIDENCE", raising=False)
    big = np.arange(EVIDENCE_FULL_LIMIT + 10, dtype=np.float32) - 5.0
    small = np.ones((3, 4), np.float32)
    ref, test = save_reprod_pair(tmp_path, "step", "case", {"big": big, "small": small},
                                 {"big": big + 1, "small": small})
    assert np.array_equal(ref["big"], big) and np.array_equal(test["big"], big + 1)  # compared in full
    saved = ReprodDiffHelper().load_info(str(tmp_path / "step" / "case_torch.npy"))
    assert np.array_equal(saved["small"], small)
    assert "big" not in saved
    sample = next(v for k, v in saved.items() if k.startswith("big@sample"))
    assert sample.size <= 4096 and sample[0] == big[0]
    assert np.isclose(saved["big@sum"][0], big.astype(np.float64).sum())
    assert np.isclose(saved["big@maxabs"][0], np.abs(big).max())
    monkeypatch.setenv("ALIGN_EVIDENCE", "full")
    save_reprod_pair(tmp_path, "step", "full", {"big": big}, {"big": big})
    assert np.array_equal(ReprodDiffHelper().load_info(str(tmp_path / "step" / "full_torch.npy"))["big"], big)
    assert not list((tmp_path / "step").glob("*.tmp.npy"))


def test_paper_size_table_names_each_rows_input_and_smaller_float64_evidence():
    """The full-size table says the batch shape each step ran at and, where the float64 evidence ran smaller,
    that shape too (from the result, or the registry and the evidence note for older results)."""
    from alignment.check_all import steps_table

    def result(step, case="danet_r50", **extra):
        rows = [{"name": "loss", "max_diff": 1e-3, "mean_diff": 1e-3, "ref_max": 1.0, "bar": "b", "passed": False}]
        evidence = [dict(rows[0], max_diff=1e-14, passed=True)]
        return {"step": step, "case": case, "size": "full", "dtype": "float32", "status": "rounding", "rows": rows,
                "evidence": evidence, "notes": [], "seconds": 90.0, **extra}

    table = steps_table([
        result("backward", shape=[1, 3, 512, 512], evidence_shape=[2, 3, 256, 256]),
        result("train", notes=["float64 evidence at [2, 3, 128, 128] (float32 at ...)"]),
        result("forward", case="lsnet_diffFPN", shape=[4, 3, 256, 256]),
    ], shapes=True).splitlines()
    assert table[0].startswith("| case | step | dtype | input | status |")
    assert "| 1x3x512x512 (float64: 2x3x256x256) | **rounding** |" in table[2]
    assert "| 1x3x512x512 (float64: 2x3x128x128) |" in table[3]  # registry train shape, note's evidence shape
    assert "| 4x3x256x256 pairs | **rounding** |" in table[4]
    assert "| input |" not in steps_table([result("forward")])


def test_check_all_isolate_runs_each_check_in_its_own_process(tmp_path, monkeypatch):
    """--isolate (the default at size full, where one check peaks at ~19 GB) runs each check as a child
    process: the result file and exit code come back as from the in-process call."""
    import subprocess

    from alignment import check_all

    calls = []
    real_run = subprocess.run

    def spy(cmd, *args, **kwargs):
        calls.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    code = check_all.main(["--model", "danet_r50", "--steps", "lr", "--out", str(tmp_path), "--isolate"])
    assert code == 0
    assert [c[1:3] for c in calls] == [["-m", "alignment.check_lr"]]
    assert (tmp_path / "lr" / "danet_r50_small_float64_result.json").is_file()
    calls.clear()
    assert check_all.main(["--model", "danet_r50", "--steps", "lr", "--out", str(tmp_path)]) == 0
    assert calls == []  # size small runs in-process unless asked
