"""Weight files and checkpoints are read without running code from them (GitHub issue 8).

A ``.pdparams`` / ``.pdckpt`` whose pickle calls ``os.system`` is refused by every loader (load_weights,
model.pretrained, load_checkpoint, --resume, tools/eval.py), naming the file and the global, and the
command never runs; files written by ``paddle.save`` (model and optimizer state dicts, protocol 2 and 4,
a trainer checkpoint) read exactly as ``paddle.load`` reads them; ``trust_pickle`` / ``--trust-pickle``
(also ``Trainer(trust_pickle=True)`` and ``with trusted_pickle():``) let a trusted file with another global
through.
"""

from __future__ import annotations

import datetime
import os
import pickle

import numpy as np
import paddle
import pytest
from pipeline_helpers import make_cityscapes, seg_config, write_config

import paddle_models
import tools.eval as eval_tool
import tools.train as train_tool
from paddle_models.engine.builder import build_model
from paddle_models.engine.checkpoint import CheckpointError, WeightsError, load_checkpoint, read_paddle_file
from paddle_models.engine.cli import EXIT_CONFIG, run_cli
from paddle_models.engine.run_config import load_run_config
from paddle_models.engine.trainer import Trainer
from paddle_models.engine.weights import load_weights
from rsrepro.safe_load import ALLOWED_GLOBALS, UntrustedPickleError, load_pickle, trusted_pickle


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Recorder(pickle.Unpickler):
    def __init__(self, handle):
        super().__init__(handle, encoding="latin1")
        self.globals = set()

    def find_class(self, module, name):
        self.globals.add((module.replace("__builtin__", "builtins"), name))
        return super().find_class(module, name)


def _globals_of(path):
    with open(path, "rb") as handle:
        recorder = _Recorder(handle)
        recorder.load()
    return recorder.globals


def _assert_same(ours, theirs, where=""):
    """Same structure, types, keys (in order), tensor names, dtypes, shapes and values."""
    assert type(ours) is type(theirs), where
    if isinstance(ours, dict):
        assert list(ours) == list(theirs), where
        for key in ours:
            _assert_same(ours[key], theirs[key], f"{where}/{key}")
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _assert_same(a, b, f"{where}/{i}")
    elif isinstance(ours, paddle.Tensor):
        assert (ours.name, ours.dtype, ours.shape) == (theirs.name, theirs.dtype, theirs.shape), where
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype, where
        np.testing.assert_array_equal(ours, theirs)
    elif type(ours).__name__ == "GeneratorState":
        assert ours.__getstate__() == theirs.__getstate__(), where
    else:
        assert ours == theirs, where


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny config, a 2-iteration run of it (its final checkpoint) and a malicious .pdparams."""
    root = tmp_path_factory.mktemp("safe")
    data = make_cityscapes(str(root / "data"), num_train=4, num_val=2, size=(16, 16))
    cfg = seg_config(data, iters=2, save_interval=0)
    cfg["dataset"]["train"]["transforms"][0].update(base_size=16, crop_size=16)
    config = write_config(str(root / "tiny.yml"), cfg)
    summary = Trainer(load_run_config(config), str(root / "run"), progress=False).train()
    marker = root / "pwned"
    evil = str(root / "evil.pdparams")
    state = {k: v.numpy() for k, v in build_model(load_run_config(config)).state_dict().items()}
    with open(evil, "wb") as handle:  # a valid state dict, plus one entry that runs a command
        pickle.dump({**state, "payload": _Payload(str(marker))}, handle, protocol=4)
    return {"config": config, "cfg": cfg, "checkpoint": summary["checkpoint"], "evil": evil, "marker": marker,
            "root": root}


def _refusal(text, path):
    assert path in text and "'posix.system'" in text, text
    assert "trust_pickle=True" in text and "--trust-pickle" in text, text


def test_malicious_weights_refused_by_load_weights_pretrained_and_load_checkpoint(run):
    model = build_model(load_run_config(run["config"]))
    with pytest.raises(UntrustedPickleError) as err:
        load_weights(model, run["evil"])
    _refusal(str(err.value), run["evil"])
    with pytest.raises(UntrustedPickleError):
        build_model(load_run_config(run["config"], [f"model.pretrained={run['evil']}"]))
    with pytest.raises(UntrustedPickleError) as err:  # refused, not reported as a truncated file
        load_checkpoint(run["evil"])
    _refusal(str(err.value), run["evil"])
    with pytest.raises(UntrustedPickleError):
        load_pickle(run["evil"], trust_pickle=False)
    with trusted_pickle(), pytest.raises(UntrustedPickleError):  # an explicit False wins over the scope
        load_pickle(run["evil"], trust_pickle=False)
    assert not run["marker"].exists()


def test_trusted_pickle_really_uses_plain_pickle(run, tmp_path):
    """The control: the payload works, so the refusals above are what kept the marker away."""
    marker = tmp_path / "trusted_marker"
    path = tmp_path / "trusted.pdparams"
    with open(path, "wb") as handle:
        pickle.dump({"payload": _Payload(str(marker))}, handle)
    with trusted_pickle():
        assert load_pickle(str(path)) == {"payload": 0}
    assert marker.exists()
    with pytest.raises(UntrustedPickleError):  # the scope ended
        load_pickle(str(path))


def test_eval_and_resume_cli_refuse_malicious_file(run, capsys, tmp_path):
    out = tmp_path / "metrics.json"
    code = run_cli(eval_tool.main, ["--config", run["config"], "--weights", run["evil"], "--out", str(out),
                                    "--no_progress"])
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG and "Traceback" not in err and err.count("error: ") == 1, err
    _refusal(err, run["evil"])
    assert not out.exists()

    work = tmp_path / "resumed"
    code = run_cli(train_tool.main, ["--config", run["config"], "--work_dir", str(work), "--resume", run["evil"],
                                     "--no_progress"])
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG and err.count("error: ") == 1, err
    _refusal(err[err.index("error: "):], run["evil"])
    assert not work.exists()  # the run that failed before training leaves nothing
    assert not run["marker"].exists()


@pytest.fixture(scope="module")
def paddle_files(run):
    """Files written by paddle.save: model and optimizer state dicts (Adam + poly decay, Momentum + warmup,
    after a step so the accumulators exist), a protocol-2 state dict, and the trainer checkpoint."""
    folder = run["root"] / "paddle_files"
    folder.mkdir()
    model = paddle_models.build_model("pipeline_tiny_seg", num_classes=19)
    paths = {"model": str(folder / "model.pdparams"), "model_protocol2": str(folder / "model_p2.pdparams"),
             "checkpoint": run["checkpoint"]}
    paddle.save(model.state_dict(), paths["model"])
    paddle.save(model.state_dict(), paths["model_protocol2"], protocol=2)
    poly = paddle.optimizer.lr.PolynomialDecay(0.01, 10, end_lr=0.0, power=0.9)
    optimizers = {
        "adam": paddle.optimizer.Adam(learning_rate=poly, parameters=model.parameters()),
        "momentum": paddle.optimizer.Momentum(
            learning_rate=paddle.optimizer.lr.LinearWarmup(poly, 2, 0.0, 0.01), momentum=0.9,
            parameters=model.parameters(), weight_decay=1e-4),
    }
    for name, optimizer in optimizers.items():
        sum(out.mean() for out in model(paddle.rand([1, 3, 8, 8]))).backward()
        optimizer.step()
        optimizer.clear_grad()
        optimizer._learning_rate.step()
        paths[name] = str(folder / f"{name}.pdopt")
        paddle.save(optimizer.state_dict(), paths[name])
    return paths


@pytest.mark.parametrize("kind", ["model", "model_protocol2", "adam", "momentum", "checkpoint"])
def test_paddle_saved_files_read_exactly_like_paddle_load(paddle_files, kind):
    path = paddle_files[kind]
    used = _globals_of(path)
    assert used <= set(ALLOWED_GLOBALS), used - set(ALLOWED_GLOBALS)
    theirs = paddle.load(path)
    ours = read_paddle_file(path)
    _assert_same(ours, theirs)
    assert len(theirs) > 0
    if kind == "checkpoint":  # every kind of content our checkpoints hold came through
        assert ("paddle.base.libpaddle", "GeneratorState") in used and ("builtins", "tuple") in used
        assert isinstance(ours["model"]["stem.0.weight"], paddle.Tensor)
        assert load_checkpoint(path)["trainer"]["iteration"] == 2
    if kind == "model_protocol2":
        assert ("_codecs", "encode") in used
    if kind == "adam":
        assert "LR_Scheduler" in ours and any(k.endswith("moment1_0") for k in ours)


def _dated_checkpoint(run, folder):
    """The run's checkpoint with a harmless extra global (a datetime in the trainer state)."""
    with open(run["checkpoint"], "rb") as handle:
        obj = pickle.load(handle)
    obj["trainer"]["saved_on"] = datetime.date(2024, 1, 2)
    path = str(folder / "dated.pdckpt")
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=4)
    return path


def test_trust_flag_lets_a_trusted_file_with_another_global_through(run, capsys, tmp_path):
    """A checkpoint with a harmless extra global (a datetime in the trainer state) is refused by default,
    and loads with trust_pickle=True / --trust-pickle."""
    path = _dated_checkpoint(run, tmp_path)
    model = build_model(load_run_config(run["config"]))
    with pytest.raises(UntrustedPickleError, match=r"refused to unpickle the global 'datetime.date'"):
        load_weights(model, path)
    assert load_weights(model, path, trust_pickle=True)["loaded"] == len(model.state_dict())
    assert load_checkpoint(path, trust_pickle=True)["trainer"]["saved_on"] == datetime.date(2024, 1, 2)

    out = tmp_path / "metrics.json"
    argv = ["--config", run["config"], "--weights", path, "--out", str(out), "--no_progress"]
    assert run_cli(eval_tool.main, argv) == EXIT_CONFIG and not out.exists()
    assert "'datetime.date'" in capsys.readouterr().err
    assert run_cli(eval_tool.main, argv + ["--trust-pickle"]) == 0 and out.exists()

    work = tmp_path / "resumed"
    argv = ["--config", run["config"], "--work_dir", str(work), "--resume", path, "--no_progress"]
    assert run_cli(train_tool.main, argv) == EXIT_CONFIG and not work.exists()
    assert run_cli(train_tool.main, argv + ["--trust-pickle"]) == 0
    assert f"resumed from {path}: iteration 2" in (work / "train.log").read_text()


def test_weights_that_do_not_fit_list_each_key_once(run, tmp_path):
    """missing / unexpected / shape mismatch are separate lists; a mis-shaped key is not also 'missing'."""
    state = paddle_models.build_model("pipeline_tiny_seg", num_classes=7).state_dict()
    del state["stem.0.bias"]
    state["extra.weight"] = paddle.zeros([1])
    path = str(tmp_path / "other.pdparams")
    paddle.save(state, path)
    model = build_model(load_run_config(run["config"]))  # 19 classes
    with pytest.raises(WeightsError) as err:
        load_weights(model, path)
    assert isinstance(err.value, CheckpointError) and isinstance(err.value, ValueError)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path} does not fit the model:"
    assert lines[1:] == [
        "  missing (1): stem.0.bias",
        "  unexpected (1): extra.weight",
        "  shape mismatch (6): heads.0.weight: file [7, 8, 1, 1] vs model [19, 8, 1, 1], heads.0.bias: file [7] "
        "vs model [19], heads.1.weight: file [7, 8, 1, 1] vs model [19, 8, 1, 1], heads.1.bias: file [7] vs "
        "model [19], heads.2.weight: file [7, 8, 1, 1] vs model [19, 8, 1, 1], heads.2.bias: file [7] vs model "
        "[19]"]


def test_truncated_weights_are_a_weights_error(run, tmp_path):
    data = open(run["checkpoint"], "rb").read()
    path = tmp_path / "cut.pdparams"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=rf"{path}: can not parse the file as weights written by paddle.save"):
        load_weights(build_model(load_run_config(run["config"])), str(path))


def test_trainer_trust_pickle_argument_and_context_manager(run, tmp_path):
    """Trainer(trust_pickle=True) reads a --resume checkpoint and a model.pretrained file with another global;
    the default refuses both (and leaves no work dir); ``with trusted_pickle():`` still works; the trust
    ends with the constructor."""
    path = _dated_checkpoint(run, tmp_path)
    cfg = load_run_config(run["config"])
    with pytest.raises(UntrustedPickleError, match=r"'datetime.date'"):
        Trainer(cfg, str(tmp_path / "refused"), resume=path, progress=False)
    assert not (tmp_path / "refused").exists()
    trainer = Trainer(cfg, str(tmp_path / "trusted"), resume=path, progress=False, trust_pickle=True)
    assert trainer.iteration == 2
    with trusted_pickle():  # the library's other way in, kept: the default False defers to the block
        assert Trainer(cfg, str(tmp_path / "scoped"), resume=path, progress=False).iteration == 2
    with pytest.raises(UntrustedPickleError):  # the flag did not leak out of the constructor
        load_checkpoint(path)

    pretrained = load_run_config(run["config"], [f"model.pretrained={path}"])
    with pytest.raises(UntrustedPickleError, match=r"'datetime.date'"):
        Trainer(pretrained, str(tmp_path / "pre_refused"), progress=False)
    trainer = Trainer(pretrained, str(tmp_path / "pre_trusted"), progress=False, trust_pickle=True)
    expected = read_paddle_file(run["checkpoint"])["model"]
    for key, value in trainer.model.state_dict().items():  # the pretrained weights really arrived
        np.testing.assert_array_equal(value.numpy(), expected[key].numpy(), err_msg=key)
