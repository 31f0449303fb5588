"""The TIPC chain (test_tipc/): prepare the tiny data, then train -> eval -> export (Paddle + ONNX, checked)
-> infer with every backend at 1 and 2 threads, through the real tools. LSNet runs here; the other model
families with ``--full``. Each command must print ``Run successfully with command - ...``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["lsnet_diffFPN", "danet_r50", "factseg_r50", "dasnet_v2_r50", "dasnet_r50"]


def _chain(model: str) -> None:
    config = f"test_tipc/configs/{model}/train_infer_python.txt"
    env = {**os.environ, "PYTHON": sys.executable, "GLOG_minloglevel": "2"}
    prepared = subprocess.run(["bash", "test_tipc/prepare.sh", config, "lite_train_lite_infer"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    done = subprocess.run(["bash", "test_tipc/test_train_inference_python.sh", config, "lite_train_lite_infer"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3000)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("Run ")]
    assert done.returncode == 0 and lines, done.stdout[-4000:] + done.stderr[-2000:]
    assert all(ln.startswith("Run successfully with command - ") for ln in lines), "\n".join(lines)
    assert len(lines) == 3 + 4 * 2  # train, eval, export; 4 backends x 2 thread counts
    log = open(os.path.join(REPO, "test_tipc", "output", model, "results_python.log")).read()
    assert log.count("Run successfully") == len(lines)


def test_every_model_family_has_a_tipc_config():
    assert sorted(os.listdir(os.path.join(REPO, "test_tipc", "configs"))) == sorted(MODELS)


def test_lsnet_chain():
    _chain("lsnet_diffFPN")


@pytest.mark.full
@pytest.mark.parametrize("model", MODELS[1:])
def test_other_chains(model):
    _chain(model)
