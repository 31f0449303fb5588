"""Interrupted training and determinism (GitHub issue 8).

``tools/train.py`` runs in a subprocess and is SIGKILLed at exact points, reached through the test-only
hook ``rsrepro.fileio.pause_point`` (``$PADDLE_RS_TEST_PAUSE_AT``: the process writes a marker file and
sleeps there):

- ``mid-iter:3``: gradients of iteration 3 computed, optimizer step not taken;
- ``before-rename:iter_00000004.pdckpt``: the checkpoint fully written to its temporary file, not renamed;
- ``after-checkpoint:6``: right after a checkpoint (and ``latest.txt``) was written;
- ``before-rename:latest.txt``: the final checkpoint renamed into place, ``latest.txt`` not yet updated
  (and, before that resume, a record cut short at the end of ``history.jsonl``, as a kill while appending
  leaves it).

After every kill the latest checkpoint must load; the run is resumed with ``--resume <work dir>`` and,
after the last resume, its final weights, optimizer state and every logged loss must equal those of an
uninterrupted run bit for bit (CPU). The model is the tiny registered test model
(``tests/pipeline_helpers.py``), so the subprocess imports that module before running tools/train.py as
``__main__`` (``runpy``); everything else is the real command line, trainer and checkpoint code.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from pipeline_helpers import make_cityscapes, seg_config, train_records, write_config

from paddle_models.engine.checkpoint import load_checkpoint, resolve_checkpoint
from paddle_models.engine.run_config import load_run_config
from paddle_models.engine.trainer import Trainer
from rsrepro.fileio import PAUSE_ENV, PAUSE_MARKER_ENV

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
# tools/train.py after the test helpers have registered the tiny model (tests/ is on the child's PYTHONPATH)
LAUNCH = ("import runpy, sys; import pipeline_helpers; "
          "sys.argv = ['tools/train.py'] + sys.argv[1:]; runpy.run_path({train!r}, run_name='__main__')"
          ).format(train=os.path.join(REPO, "tools", "train.py"))
ITERS = 8


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """8 iterations of the tiny model (BN, dropout, momentum, head lr x10, random scale / crop / flip /
    blur / jitter, shuffling over 3 iterations per epoch), checkpoints every 2 (2 kept), eval every 4."""
    root = tmp_path_factory.mktemp("kill")
    data = make_cityscapes(str(root / "data"), num_train=6, num_val=2, size=(32, 64))
    cfg = seg_config(data, iters=ITERS, save_interval=2, keep_checkpoints=2, eval_interval=4)
    return write_config(str(root / "tiny.yml"), cfg)


def _env(pause: str | None, marker: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_ENV, PAUSE_MARKER_ENV)}
    env.update(PYTHONPATH=TESTS, OMP_NUM_THREADS="1", GLOG_minloglevel="2", CUDA_VISIBLE_DEVICES="")
    if pause:
        env.update({PAUSE_ENV: pause, PAUSE_MARKER_ENV: marker})
    return env


def _train(config: str, work: str, resume: bool = False, pause: str | None = None) -> None:
    """Run tools/train.py; with ``pause``, SIGKILL it once it has reached that point."""
    marker = os.path.join(os.path.dirname(work), f"paused-{time.monotonic_ns()}")
    cmd = [sys.executable, "-c", LAUNCH, "--config", config, "--work_dir", work, "--no_progress"]
    cmd += ["--resume", work] if resume else []
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(pause, marker), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if pause is None:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        return
    deadline = time.monotonic() + 120
    while not os.path.exists(marker):
        if proc.poll() is not None:
            pytest.fail(f"train.py exited ({proc.returncode}) before reaching {pause}: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, f"{pause} not reached in 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    os.remove(marker)


def _latest(work: str) -> dict:
    """The latest checkpoint must load after every kill."""
    ckpt = load_checkpoint(resolve_checkpoint(work))
    assert ckpt["model"] and ckpt["optimizer"]["accumulators"]
    return ckpt


def _arrays(ckpt: dict) -> dict:
    out = {f"model/{k}": v.numpy() for k, v in ckpt["model"].items()}
    out.update({f"opt/{k}": v.numpy() for k, v in ckpt["optimizer"]["accumulators"].items()})
    return out


def _history(work: str) -> list:
    with open(os.path.join(work, "history.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return [{k: v for k, v in r.items() if k not in ("batch_cost", "reader_cost", "ips")} for r in records]


def test_sigkill_at_four_points_then_resume_equals_uninterrupted_run(tmp_path, config):
    reference = str(tmp_path / "reference")
    _train(config, reference)

    work = str(tmp_path / "interrupted")
    ckpt_dir = os.path.join(work, "checkpoints")
    _train(config, work, pause="mid-iter:3")
    assert _latest(work)["trainer"]["iteration"] == 2

    _train(config, work, resume=True, pause="before-rename:iter_00000004.pdckpt")
    assert len(glob.glob(os.path.join(ckpt_dir, ".iter_00000004.tmp-*.pdckpt"))) == 1  # complete, not renamed
    assert not os.path.exists(os.path.join(ckpt_dir, "iter_00000004.pdckpt"))
    assert _latest(work)["trainer"]["iteration"] == 2

    _train(config, work, resume=True, pause="after-checkpoint:6")
    assert _latest(work)["trainer"]["iteration"] == 6
    assert sorted(os.listdir(ckpt_dir)) == ["iter_00000004.pdckpt", "iter_00000006.pdckpt", "latest.txt"]
    assert "a checkpoint whose writing was interrupted" in open(os.path.join(work, "train.log")).read()

    with open(os.path.join(work, "history.jsonl"), "a") as handle:  # as if killed while appending a record
        handle.write('{"type": "train", "iter": 7, "los')
    _train(config, work, resume=True, pause="before-rename:latest.txt")  # final save: iter 8 renamed, pointer not
    assert load_checkpoint(os.path.join(ckpt_dir, "iter_00000008.pdckpt"))["trainer"]["iteration"] == ITERS
    assert _latest(work)["trainer"]["iteration"] == 6

    _train(config, work, resume=True)
    final, expected = _latest(work), _latest(reference)
    assert final["trainer"]["iteration"] == ITERS and final["trainer"]["best"]["iteration"] == 4
    for state in (final["trainer"], expected["trainer"]):  # the best model's path names the work dir
        state["best"]["path"] = os.path.basename(state["best"]["path"])
    assert final["trainer"] == expected["trainer"]
    a, b = _arrays(final), _arrays(expected)
    assert a.keys() == b.keys() and len(a) > 20
    assert [k for k in a if not np.array_equal(a[k], b[k])] == []
    assert _history(work) == _history(reference)  # every loss term, lr and evaluation, iterations 1..8
    assert len(train_records(_history(work))) == ITERS
    assert not glob.glob(os.path.join(ckpt_dir, ".*tmp*"))


def _run(config: str, work: str, seed: int):
    cfg = load_run_config(config, [f"train.seed={seed}", "train.iters=5", "train.eval_interval=null",
                                   "train.save_interval=0"])
    summary = Trainer(cfg, work, progress=False).train()
    losses = [r["losses"] for r in train_records(_history(work))]
    return losses, _arrays(load_checkpoint(summary["checkpoint"]))


def test_same_seed_same_losses_and_weights_on_cpu(tmp_path, config):
    losses_a, weights_a = _run(config, str(tmp_path / "a"), seed=5)
    losses_b, weights_b = _run(config, str(tmp_path / "b"), seed=5)
    assert losses_a == losses_b and len(losses_a) == 5
    assert all(np.array_equal(weights_a[k], weights_b[k]) for k in weights_a)
    losses_c, weights_c = _run(config, str(tmp_path / "c"), seed=6)  # the seed matters
    assert losses_c != losses_a
    assert not all(np.array_equal(weights_a[k], weights_c[k]) for k in weights_a)
