"""Run configs (rsrepro/config.py + engine/builder.py): inheritance, overrides, up-front errors."""

from __future__ import annotations

import os

import pytest
from pipeline_helpers import make_cityscapes, seg_config, write_config

from paddle_models.engine.run_config import load_run_config
from rsrepro.config import ConfigError, apply_overrides, load_config, validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_cityscapes(str(tmp_path_factory.mktemp("cs")), num_train=2, num_val=1)


def _write(tmp_path, cfg, name="run.yml"):
    return write_config(str(tmp_path / name), cfg)


def test_valid_config_gets_defaults_and_sources(tmp_path, data_root):
    cfg = load_run_config(_write(tmp_path, seg_config(data_root)))
    assert cfg["train"]["num_workers"] == 0 and cfg["train"]["keep_checkpoints"] == 3
    assert cfg["eval"]["ms_scales"] == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.2]
    assert cfg["train"]["amp"]["level"] is None
    assert cfg["_sources"]["train.iters"].endswith("run.yml")


def test_base_inheritance_overrides_and_yaml_floats(tmp_path, data_root):
    base = seg_config(data_root)
    write_config(str(tmp_path / "base" / "b.yml"), base)
    child = tmp_path / "child.yml"
    child.write_text("_base_: base/b.yml\ntrain:\n  iters: 7\noptimizer:\n  weight_decay: 5e-4\n")
    cfg = load_run_config(str(child), ["train.batch_size=3", "dataset.train.transforms.0.crop_size=16",
                                       "lr_scheduler.base_lr=1e-3"])
    assert cfg["train"]["iters"] == 7 and cfg["train"]["batch_size"] == 3
    assert cfg["train"]["log_interval"] == 1  # inherited
    assert cfg["optimizer"]["weight_decay"] == 5e-4  # '5e-4' without a dot is a float here
    assert isinstance(cfg["lr_scheduler"]["base_lr"], float)
    assert cfg["dataset"]["train"]["transforms"][0]["crop_size"] == 16
    assert cfg["_sources"]["train.iters"].endswith("child.yml")
    assert cfg["_sources"]["train.log_interval"].endswith("b.yml")
    assert cfg["_sources"]["train.batch_size"] == "override 'train.batch_size=3'"


def test_every_problem_reported_at_once_with_source(tmp_path, data_root):
    cfg = seg_config(data_root)
    cfg["train"]["itres"] = 5  # typo
    cfg["train"]["batch_size"] = "two"
    cfg["optimizer"]["type"] = "rmsprop"
    cfg["eval"]["mode"] = "tiles"
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "4 config problems" in text
    assert f"{path}: train.itres: unknown key; did you mean 'iters'?" in text
    assert "train.batch_size: expected int, got str 'two'" in text
    assert "optimizer.type: expected one of" in text and "'rmsprop'" in text
    assert "eval.mode: expected one of ['whole', 'slide'], got 'tiles'" in text


def test_missing_dataset_paths_are_named(tmp_path, data_root):
    cfg = seg_config(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, cfg), ["dataset.val.list_file=val_missing.txt"])
    text = str(err.value)
    assert "dataset.train.root: folder not found" in text and "nowhere" in text
    assert "dataset.val.root: folder not found" in text
    assert "dataset.val.list_file: file not found: val_missing.txt" in text


def test_missing_required_and_iters_epochs_rule(tmp_path, data_root):
    cfg = seg_config(data_root)
    del cfg["model"]["type"]
    cfg["train"]["epochs"] = 3  # with iters: both given
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, cfg))
    assert "model.type: required key is missing" in str(err.value)
    assert "give exactly one of train.iters and train.epochs (found both)" in str(err.value)


def test_registry_checks_model_loss_dataset_transforms(tmp_path, data_root):
    cfg = seg_config(data_root, model={"type": "danet", "backbone": "resnet50", "num_classes": 19,
                                       "multigrid": True})
    cfg["loss"]["weight"] = [1, 1, 1]
    cfg["dataset"]["train"]["label_typ"] = "auto"
    cfg["dataset"]["train"]["transforms"] = [{"type": "RandomFlop"}]
    cfg["model"]["num_classes"] = 21
    with pytest.raises(ConfigError) as err:
        load_run_config(_write(tmp_path, cfg))
    text = str(err.value)
    assert "model.multigrid: unknown argument; did you mean 'multi_grid'?" in text
    assert "loss.weight: unknown argument; did you mean 'weights'?" in text
    assert "dataset.train.label_typ: unknown argument; did you mean 'label_type'?" in text
    assert "dataset.train.transforms: transform #0 (RandomFlop)" in text
    assert "model.num_classes: 21 but dataset 'cityscapes' has 19 classes" in text


def test_kwarg_type_checked_against_factory_default(tmp_path, data_root):
    cfg = seg_config(data_root, model={"type": "danet", "backbone": "resnet50", "num_classes": 19,
                                       "multi_grid": "yes"})
    with pytest.raises(ConfigError, match=r"model.multi_grid: expected bool \(like the default False\)"):
        load_run_config(_write(tmp_path, cfg))


def test_schedule_errors_and_unknown_task(tmp_path, data_root):
    cfg = seg_config(data_root)
    cfg["lr_scheduler"] = {"type": "poly", "base_lr": 0.01, "powr": 0.9}
    cfg["task"]["type"] = "detection"
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, cfg))
    assert "unknown key(s) ['powr']" in str(err.value)
    assert "task.type: expected one of ['segmentation', 'change_detection']" in str(err.value)


def test_eval_section_checks(tmp_path, data_root):
    cfg = seg_config(data_root)
    cfg["eval"] = {"mode": "slide", "score": "sigmoid", "thresholds": [0.5, 0.2]}
    with pytest.raises(ConfigError) as err:
        load_run_config(_write(tmp_path, cfg))
    text = str(err.value)
    assert "eval.score: unknown score 'sigmoid'" in text
    assert "eval.thresholds: thresholds must be a non-empty, strictly increasing list" in text
    assert "eval.mode: 'slide' needs eval.crop_size" in text


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        apply_overrides({}, ["train.iters"])
    with pytest.raises(ConfigError, match="index 5 out of range"):
        apply_overrides({"a": [1, 2]}, ["a.5=3"])
    with pytest.raises(ConfigError, match="is a int"):
        apply_overrides({"a": 1}, ["a.b=2"])
    cfg = apply_overrides({"a": {"b": 1}}, ["a.c=[1, 2]", "x.y.z=null"])
    assert cfg == {"a": {"b": 1, "c": [1, 2]}, "x": {"y": {"z": None}}}


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("train:\n  iters: 3\n   batch_size: [\n")
    with pytest.raises(ConfigError, match=r"bad.yml:\d+: not valid YAML"):
        load_config(str(path))


def test_shorthand_sections():
    out = validate({"task": "change_detection", "model": {"type": "x"}, "loss": {"type": "y"}, "dataset": {},
                    "train": {"batch_size": 1, "epochs": 2, "amp": "O1"}, "optimizer": {},
                    "lr_scheduler": {"type": "constant", "base_lr": 0.1}, "eval": {}, "export": {}})
    assert out["task"]["type"] == "change_detection" and out["train"]["amp"]["level"] == "O1"


def test_shipped_configs_resolve(tmp_path):
    """The paper configs are complete: only the dataset root (absent here) is reported."""
    for name in ("danet_r101_mg_cityscapes_768_240e.yml", "danet_r50_cityscapes_768_240e.yml"):
        with pytest.raises(ConfigError) as err:
            load_run_config(os.path.join(REPO, "configs", "danet", name))
        problems = [line for line in str(err.value).splitlines()[1:]]
        assert len(problems) == 2 and all("root: folder not found" in p for p in problems), problems
    root = make_cityscapes(str(tmp_path / "cs"), 1, 1)
    cfg = load_run_config(os.path.join(REPO, "configs", "danet", "danet_r101_mg_cityscapes_768_240e.yml"),
                          [f"dataset.train.root={root}", f"dataset.val.root={root}"])
    assert cfg["model"]["backbone"] == "resnet101" and cfg["model"]["multi_grid"] is True
    assert cfg["train"]["iters"] == 89040 and cfg["lr_scheduler"]["base_lr"] == 0.003
    assert cfg["optimizer"]["lr_mult"] == {"head.": 10.0} and cfg["optimizer"]["weight_decay"] == 1e-4
    r50 = load_run_config(os.path.join(REPO, "configs", "danet", "danet_r50_cityscapes_768_240e.yml"),
                          [f"dataset.train.root={root}", f"dataset.val.root={root}"])
    assert r50["model"]["backbone"] == "resnet50" and r50["model"]["multi_grid"] is False


def test_cli_reports_config_error_and_exit_code(tmp_path, data_root, capsys):
    from paddle_models.engine.cli import EXIT_CONFIG, run_cli
    from tools import train

    cfg = seg_config(data_root)
    cfg["train"]["batch_sise"] = 2
    path = _write(tmp_path, cfg)
    assert run_cli(train.main, ["--config", path, "--work_dir", str(tmp_path / "w")]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "train.batch_sise: unknown key; did you mean 'batch_size'?" in err
    assert not (tmp_path / "w").exists()  # nothing was started
