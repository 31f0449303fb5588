"""Training: sampling, schedule stepping, exact resume, NaN stop, AMP on CPU, outputs, data parallel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest
from pipeline_helpers import make_cityscapes, seg_config, train_records, write_config

from paddle_models.engine.checkpoint import load_checkpoint
from paddle_models.engine.run_config import check_run_config
from paddle_models.engine.trainer import ResumableBatchSampler, Trainer, TrainingDivergedError, epoch_indices
from rsrepro.config import ConfigError, load_config
from rsrepro.schedule_math import lr_at, normalize_schedule

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_cityscapes(str(tmp_path_factory.mktemp("cs")), num_train=6, num_val=2)


def _cfg(tmp_path, cfg):
    path = write_config(str(tmp_path / "cfg.yml"), cfg)
    out = load_config(path)
    check_run_config(out)
    return out


# ------------------------------------------------------------------------------------- sampling
def test_epoch_indices_shard_pad_and_reproduce():
    shards = [epoch_indices(10, seed=1, epoch=2, shuffle=True, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    flat = sorted(sum(shards, []))
    assert set(flat) == set(range(10)) and len(flat) == 12  # 2 padded repeats, every sample seen
    assert shards == [epoch_indices(10, 1, 2, True, r, 3) for r in range(3)]
    assert epoch_indices(10, 1, 3, True) != epoch_indices(10, 1, 2, True)  # a new order each epoch
    assert epoch_indices(10, 2, 2, True) != epoch_indices(10, 1, 2, True)  # and per seed
    assert epoch_indices(5, 0, 0, False) == [0, 1, 2, 3, 4]


def test_sampler_skips_into_an_epoch():
    sampler = ResumableBatchSampler(list(range(11)), batch_size=3, shuffle=True, drop_last=True, seed=4)
    sampler.set_epoch(1)
    full = list(sampler)
    assert len(full) == len(sampler) == 3 and all(len(b) == 3 for b in full)
    sampler.set_epoch(1, skip=2)
    assert list(sampler) == full[2:]
    assert isinstance(sampler, paddle.io.DistributedBatchSampler)


# ------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("schedule", [
    {"type": "step", "base_lr": 0.1, "step_size": 1, "gamma": 0.5, "by": "epoch"},
    {"type": "poly", "base_lr": 0.1, "power": 0.9, "warmup_iters": 2, "warmup_start_lr": 0.01, "by": "iter"},
])
def test_scheduler_stepped_per_unit(tmp_path, data_root, schedule):
    # 6 samples, batch 2: 3 iterations per epoch; 7 iterations cross two epoch boundaries
    cfg = _cfg(tmp_path, {**seg_config(data_root, iters=7), "lr_scheduler": schedule})
    summary = Trainer(cfg, str(tmp_path / "run"), progress=False).train()
    lrs = [r["lr"] for r in train_records(_history(summary["work_dir"]))]
    norm = normalize_schedule(schedule)
    if schedule["by"] == "epoch":
        expected = [lr_at(norm, it // 3, 3) for it in range(7)]  # 3 = ceil(7 / 3) epochs of schedule
        assert expected == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    else:
        expected = [lr_at(norm, it, 7) for it in range(7)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


def test_length_in_epochs(tmp_path, data_root):
    cfg = seg_config(data_root)
    cfg["train"].pop("iters")
    cfg["train"]["epochs"] = 2
    summary = Trainer(_cfg(tmp_path, cfg), str(tmp_path / "run"), progress=False).train()
    assert summary["total_iters"] == 6 and summary["epoch"] == 2 and summary["finished"]


def _history(work_dir):
    with open(os.path.join(work_dir, "history.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


# -------------------------------------------------------------------------------- exact resume
def _state(path):
    ckpt = load_checkpoint(path)
    model = {k: v.numpy() for k, v in ckpt["model"].items()}
    opt = {k: v.numpy() for k, v in ckpt["optimizer"]["accumulators"].items()}
    return model, opt, ckpt


def test_resume_continues_bit_for_bit(tmp_path, data_root):
    """DANet-R50 at 32x32 (dropout, BN, momentum, head x10, random augmentation incl. blur/jitter,
    shuffling): 4 iterations in one go == 2 iterations, stop, resume, 2 more. The stop falls inside
    epoch 1 (3 iterations per epoch), iteration 4 is in epoch 2."""
    model = {"type": "danet", "backbone": "resnet50", "num_classes": 19}
    cfg = _cfg(tmp_path, seg_config(data_root, model=model, iters=4))
    full = Trainer(cfg, str(tmp_path / "full"), progress=False).train()
    first = Trainer(cfg, str(tmp_path / "split"), progress=False).train(stop_at=2)
    assert not first["finished"] and first["checkpoint"].endswith("iter_00000002.pdckpt")
    second = Trainer(cfg, str(tmp_path / "split"), resume=str(tmp_path / "split"), progress=False).train()
    assert second["iterations_this_run"] == 2 and second["finished"]

    model_a, opt_a, ckpt_a = _state(full["checkpoint"])
    model_b, opt_b, ckpt_b = _state(second["checkpoint"])
    assert model_a.keys() == model_b.keys() and opt_a.keys() == opt_b.keys() and len(opt_a) > 100
    different = [k for k in model_a if not np.array_equal(model_a[k], model_b[k])]
    different += [k for k in opt_a if not np.array_equal(opt_a[k], opt_b[k])]
    assert different == []
    # the run really moved: weights differ from the mid-run checkpoint
    model_mid, _, _ = _state(first["checkpoint"])
    assert not np.array_equal(model_mid["head.conv8.1.weight"], model_a["head.conv8.1.weight"])
    assert ckpt_a["trainer"]["epoch"] == ckpt_b["trainer"]["epoch"] == 1
    losses_a = [r["losses"] for r in train_records(_history(str(tmp_path / "full")))]
    losses_b = [r["losses"] for r in train_records(_history(str(tmp_path / "split")))]
    assert losses_a == losses_b  # every logged loss term, iterations 1..4, identical


# --------------------------------------------------------------------------------- failures
def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path, data_root):
    cfg = _cfg(tmp_path, seg_config(data_root, iters=6, save_interval=2, keep_checkpoints=1))
    trainer = Trainer(cfg, str(tmp_path / "run"), progress=False)
    real, calls = trainer.loss_fn, []

    def poisoned(outputs, labels):
        calls.append(1)
        loss = real(outputs, labels)
        return loss * float("nan") if len(calls) == 3 else loss

    trainer.loss_fn = poisoned
    with pytest.raises(TrainingDivergedError) as err:
        trainer.train()
    text = str(err.value)
    good = os.path.join(str(tmp_path / "run"), "checkpoints", "iter_00000002.pdckpt")
    assert "diverged at iteration 3" in text and "loss nan" in text and good in text
    assert os.path.isfile(good) and trainer.iteration == 2
    saved = load_checkpoint(good)["model"]
    params = {n: p for n, p in trainer.model.named_parameters() if not p.stop_gradient}
    assert len(params) == 12
    for name, value in params.items():  # stopped before the optimizer step
        np.testing.assert_array_equal(value.numpy(), saved[name].numpy())


def test_warmup_longer_than_training_is_a_config_error(tmp_path, data_root):
    cfg = _cfg(tmp_path, {**seg_config(data_root, iters=3),
                          "lr_scheduler": {"type": "poly", "base_lr": 0.1, "warmup_iters": 5}})
    with pytest.raises(ConfigError, match="lr_scheduler.warmup_iters: 5 warmup steps"):
        Trainer(cfg, str(tmp_path / "run"), progress=False)


# ----------------------------------------------------------------------------- outputs & AMP
def test_outputs_logs_best_model_and_amp_on_cpu(tmp_path, data_root):
    amp = {"level": "O1", "custom_black_list": ["reduce_mean"]}
    cfg = _cfg(tmp_path, seg_config(data_root, iters=4, log_interval=2, eval_interval=2, eval_at_end=True,
                                     save_interval=2, plot=True, amp=amp))
    work = str(tmp_path / "run")
    summary = Trainer(cfg, work, progress=False).train()
    assert summary["amp"] == "O1" and "keeps float32" in summary["amp_note"]
    log = open(os.path.join(work, "train.log"), encoding="utf-8").read()
    assert "keeps float32" in log
    line = next(line for line in log.splitlines() if "[train] epoch 1 iter 2/4" in line)
    for word in ("loss", "fused", "pam", "cam", "lr", "batch_cost", "reader_cost", "ips", "eta"):
        assert re.search(rf"\b{word} [0-9]", line), (word, line)
    assert summary["line"].startswith("done: 4 iterations") and summary["line"] in log
    best = json.load(open(os.path.join(work, "best_model.json")))
    assert os.path.basename(best["path"]) == f"best_model_epoch{best['epoch']}_iter{best['iteration']}.pdparams"
    assert os.path.isfile(best["path"]) and best["metric"] == "miou"
    assert [e["iter"] for e in _history(work) if e["type"] == "eval"] == [2, 4]
    assert os.path.isfile(os.path.join(work, "eval", "iter_00000004.json"))
    assert os.path.getsize(os.path.join(work, "loss_curve.png")) > 5000
    vdl = os.listdir(os.path.join(work, "vdl"))
    assert any(name.startswith("vdlrecords") for name in vdl)
    assert sorted(os.listdir(os.path.join(work, "checkpoints"))) == ["iter_00000002.pdckpt", "iter_00000004.pdckpt",
                                                                     "latest.txt"]


# ------------------------------------------------------------------------------- data parallel
def test_two_process_data_parallel_cpu(tmp_path, data_root):
    """``paddle.distributed.launch`` with 2 CPU processes (gloo) running tools/train.py on DANet-R50."""
    cfg = seg_config(data_root, model={"type": "danet", "backbone": "resnet50", "num_classes": 19},
                     iters=2, batch_size=1, eval_at_end=True)
    path = write_config(str(tmp_path / "dp.yml"), cfg)
    work = tmp_path / "dp"
    # launch takes any CUDA_VISIBLE_DEVICES (even empty, as conftest sets it) as GPU mode: drop it
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(OMP_NUM_THREADS="1", GLOG_minloglevel="2")
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(tmp_path / "launch"), os.path.join(REPO, "tools", "train.py"),
                           "--config", path, "--work_dir", str(work), "--no_progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    logs = "".join(open(os.path.join(tmp_path / "launch", f)).read() for f in os.listdir(tmp_path / "launch"))
    assert proc.returncode == 0, logs[-3000:]
    summary = json.load(open(work / "train_summary.json"))
    assert summary["world_size"] == 2 and summary["replicas_identical"] is True and summary["finished"]
    log = (work / "train.log").read_text()
    assert "2 process(es) x batch 1" in log and "ips" in log
    assert "[eval]" in log  # evaluation sharded over both ranks, counts merged
    assert os.path.isfile(work / "checkpoints" / "iter_00000002.pdckpt")


# --------------------------------------------------------------------------------- to_static
def test_to_static_training_matches_eager(tmp_path, data_root):
    """train.to_static: the same 4 iterations as eager mode, every logged loss term and the final
    weights equal within float32 rounding (the tiny model has BN, no dropout)."""
    runs = {}
    for static in (False, True):
        cfg = _cfg(tmp_path / str(static), seg_config(data_root, iters=4, to_static=static))
        runs[static] = Trainer(cfg, str(tmp_path / f"run_{static}"), progress=False).train()
    losses = {s: [r["losses"] for r in train_records(_history(str(tmp_path / f"run_{s}")))] for s in runs}
    assert len(losses[True]) == len(losses[False]) == 4
    for eager, static in zip(losses[False], losses[True]):
        assert eager.keys() == static.keys()
        for key in eager:
            assert abs(eager[key] - static[key]) <= 1e-5 * abs(eager[key]), (key, eager[key], static[key])
    weights_eager, _, _ = _state(runs[False]["checkpoint"])
    weights_static, _, _ = _state(runs[True]["checkpoint"])
    for key, value in weights_eager.items():
        np.testing.assert_allclose(weights_static[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
    assert "to_static" in open(os.path.join(str(tmp_path / "run_True"), "train.log")).read()


def test_to_static_with_amp_is_a_config_error(tmp_path, data_root):
    with pytest.raises(ConfigError, match="to_static is not supported together with AMP"):
        _cfg(tmp_path, seg_config(data_root, to_static=True, amp={"level": "O1"}))


def _surrogate_loss_of(model):
    """The benchmark's surrogate loss (every output's mean square) of ``model`` on a batch."""
    from bench_utils import surrogate_loss  # benchmarks/ is on pytest's pythonpath (pyproject.toml)

    def forward_loss(batch):
        return surrogate_loss(model(*batch))

    return forward_loss


@pytest.mark.parametrize("name", ["dasnet_v2", "factseg", "lsnet"])
def test_to_static_traces_each_model_exactly(name):
    """One train-mode forward + surrogate loss + backward, eager vs paddle.jit.to_static, 2x64x64: the
    loss and every gradient agree within the float32 bar (1e-5 relative L2). Exempt, checked instead to be
    zero up to rounding in both: biases whose gradient is analytically zero because a train-mode BatchNorm
    follows (LSNet's conv1x1 biases) — |grad| <= 1e-4 x the largest |grad| of the same layer's weight."""
    import paddle_models

    results = {}
    for static in (False, True):
        paddle.seed(0)
        model = paddle_models.build_model(name)
        model.train()
        inputs = [paddle.to_tensor(np.random.default_rng(i).standard_normal((2, 3, 64, 64)).astype("float32"))
                  for i in range(2 if name in ("dasnet_v2", "lsnet") else 1)]

        forward_loss = _surrogate_loss_of(model)
        loss = (paddle.jit.to_static(forward_loss, full_graph=True) if static else forward_loss)(inputs)
        loss.backward()
        results[static] = float(loss), {k: p.grad.numpy() for k, p in model.named_parameters() if p.grad is not None}
    (loss_eager, grads_eager), (loss_static, grads_static) = results[False], results[True]
    assert abs(loss_eager - loss_static) <= 1e-6 * abs(loss_eager)
    assert grads_eager.keys() == grads_static.keys() and len(grads_eager) > 100
    exempt = []
    for key, eager in grads_eager.items():
        static = grads_static[key]
        if np.array_equal(static, eager):  # incl. exact zeros (DASNet's attention convs at gamma = 0)
            continue
        rel = np.linalg.norm(static - eager) / np.linalg.norm(eager)
        if rel <= 1e-5:
            continue
        weight = grads_eager.get(key[: -len("bias")] + "weight") if key.endswith("bias") else None
        assert weight is not None, (key, rel)
        assert max(np.abs(eager).max(), np.abs(static).max()) <= 1e-4 * np.abs(weight).max(), (key, rel)
        exempt.append(key)
    assert len(exempt) <= len(grads_eager) // 10, exempt
