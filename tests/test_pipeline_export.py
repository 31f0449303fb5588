"""Export (paddle.jit.save) and deployment: exported outputs == dygraph; the tools end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
from pipeline_helpers import make_cityscapes, seg_config, write_config

from paddle_models.engine.builder import build_model
from paddle_models.engine.export import check_export, create_predictor, export_model, run_predictor
from paddle_models.engine.run_config import check_run_config
from paddle_models.engine.tasks import build_task
from rsrepro.config import load_config

# float32 rounding of fused / reordered kernels: the forward bar of the alignment harness
REL_BAR = 1e-5


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_cityscapes(str(tmp_path_factory.mktemp("cs")), num_train=4, num_val=2)


def _cfg(path, cfg):
    out = load_config(write_config(path, cfg))
    check_run_config(out)
    return out


def _cd_export_config(model: str, output_index: int) -> dict:
    """A change-detection config with no datasets: enough to build, export and check a model."""
    return {"task": {"type": "change_detection"}, "model": {"type": model},
            "loss": {"type": "danet_ce", "weights": [1.0]}, "dataset": {"train": None, "val": None},
            "train": {"batch_size": 1, "iters": 1}, "optimizer": {},
            "lr_scheduler": {"type": "constant", "base_lr": 0.1},
            "eval": {"cd_score": "softmax", "output_index": output_index}}


def _assert_equal_outputs(report, modes):
    for key in ["jit_load"] + [f"predictor_onednn_{m}" for m in modes]:
        entry = report[key]
        assert "error" not in entry, (key, entry)
        assert entry["max_rel_diff"] <= REL_BAR and entry["rel_l2"] <= REL_BAR, (key, entry)


def test_danet_export_matches_dygraph_at_new_shapes(tmp_path, data_root):
    """DANet-R50 exported with dynamic N, H, W; checked at two shapes never traced, through
    paddle.jit.load and Paddle Inference without and with oneDNN (placement pass deleted)."""
    cfg = _cfg(str(tmp_path / "c.yml"), seg_config(data_root, model={"type": "danet", "backbone": "resnet50",
                                                                      "num_classes": 19}))
    paddle.seed(0)
    model = build_model(cfg)
    model.eval()
    task = build_task(cfg)
    out = export_model(model, task, str(tmp_path / "export"), [None, 3, None, None], "logits", cfg)
    assert os.path.basename(out["model_file"]) == "inference.json" and os.path.isfile(out["params_file"])
    assert out["deploy"]["inputs"][0]["shape"] == [None, 3, None, None]
    rng = np.random.default_rng(0)
    first = check_export(model, task, str(tmp_path / "export"), [rng.normal(0, 1, (1, 3, 40, 56)).astype("float32")],
                         predictors=("off", "auto"))
    _assert_equal_outputs(first, ("off", "auto"))
    deleted = "on (deleted: onednn_placement_pass, transfer_layout_pass)"
    assert first["predictor_onednn_auto"]["config"]["onednn"] == deleted
    assert first["output_shape"] == [1, 19, 40, 56] and first["jit_load"]["argmax_agreement"] == 1.0
    second = check_export(model, task, str(tmp_path / "export"), [rng.normal(0, 1, (2, 3, 24, 48)).astype("float32")],
                          predictors=("off",))
    _assert_equal_outputs(second, ("off",))
    assert second["output_shape"] == [2, 19, 24, 48]


def test_change_detection_export_two_inputs(tmp_path):
    cfg = _cfg(str(tmp_path / "cd.yml"), _cd_export_config("pipeline_tiny_cd", output_index=0))
    model = build_model(cfg)
    task = build_task(cfg)
    info = export_model(model, task, str(tmp_path / "cd"), [None, 3, None, None], "probability", cfg)
    assert [i["name"] for i in info["deploy"]["inputs"]] == ["t0", "t1"]
    rng = np.random.default_rng(1)
    inputs = [rng.normal(0, 1, (1, 3, 20, 28)).astype("float32") for _ in range(2)]
    report = check_export(model, task, str(tmp_path / "cd"), inputs, "probability", predictors=("off",))
    _assert_equal_outputs(report, ("off",))
    assert report["output_shape"] == [1, 20, 28]  # the change probability map
    predictor, _ = create_predictor(str(tmp_path / "cd"), onednn="off")
    with pytest.raises(ValueError, match="takes 2 input"):
        run_predictor(predictor, inputs[:1])


def test_tools_train_eval_predict_export_infer(tmp_path, data_root, capsys):
    """The CLIs end to end on the tiny model: every file they promise is written."""
    from tools import eval as eval_tool
    from tools import export as export_tool
    from tools import infer as infer_tool
    from tools import predict as predict_tool
    from tools import train as train_tool

    path = write_config(str(tmp_path / "run.yml"), seg_config(data_root, iters=2))
    work = str(tmp_path / "work")
    summary = train_tool.main(["--config", path, "--work_dir", work, "--no_progress"])
    weights = summary["checkpoint"]
    result = eval_tool.main(["--config", path, "--weights", weights, "--flip", "--crop_size", "24",
                             "--out", str(tmp_path / "eval.json"), "--no_progress"])
    assert result["protocol"]["mode"] == "slide" and result["protocol"]["flip"] is True
    assert result["protocol"]["stride"] == (16, 16)
    saved = json.load(open(tmp_path / "eval.json"))
    assert saved["samples"] == 2 and len(saved["per_class"]) == 19
    assert "mIoU" in capsys.readouterr().out
    images = os.path.join(data_root, "leftImg8bit", "val")
    written = predict_tool.main(["--config", path, "--weights", weights, "--images", images,
                                 "--out", str(tmp_path / "pred")])
    assert len(written) == 2 and all(os.path.isfile(r["overlay"]) for r in written)
    from PIL import Image

    assert Image.open(written[0]["pred"]).size == (64, 32)
    export_tool.main(["--config", path, "--weights", weights, "--out", str(tmp_path / "exp"), "--check", "32", "48"])
    check = json.load(open(tmp_path / "exp" / "export_check.json"))
    _assert_equal_outputs(check, ("off", "auto"))
    out = infer_tool.main(["--model_dir", str(tmp_path / "exp"), "--images", images, "--out", str(tmp_path / "inf"),
                           "--cpu_threads", "1"])
    assert out["images"] == 2 and out["predictor"]["onednn"].startswith("on")
    # deployment == dygraph on a real image: identical label maps
    ours = np.asarray(Image.open(written[0]["pred"]))
    theirs = np.asarray(Image.open(out["written"][0]))
    assert (ours == theirs).mean() == 1.0


def test_change_detection_train_eval_predict(tmp_path):
    """The change-detection path end to end on a tiny siamese model: periodic evaluation writes the P-R
    curve and metric.json, the best model is chosen by max-F, eval and predict run from the CLIs."""
    from PIL import Image

    from paddle_models.engine.trainer import Trainer
    from tools import eval as eval_tool
    from tools import predict as predict_tool

    root = tmp_path / "cdroot"
    root.mkdir()
    cfg_dict = {
        "task": "change_detection",
        "model": {"type": "pipeline_tiny_cd"},
        "loss": {"type": "danet_ce", "weights": [1.0]},
        "dataset": {"train": {"type": "pipeline_tiny_cd", "root": str(root), "split": "train"},
                    "val": {"type": "pipeline_tiny_cd", "root": str(root), "split": "val", "num": 3}},
        "train": {"batch_size": 2, "iters": 4, "eval_interval": 2, "log_interval": 2, "save_interval": 0},
        "optimizer": {"type": "adam", "weight_decay": 5.0e-5},
        "lr_scheduler": {"type": "constant", "base_lr": 0.01},
        "eval": {"cd_score": "softmax", "output_index": 0, "decision": "argmax",
                 "thresholds": {"start": 0.0, "stop": 1.0, "num": 11}},
    }
    path = write_config(str(tmp_path / "cd.yml"), cfg_dict)
    cfg = load_config(path)
    check_run_config(cfg)
    work = str(tmp_path / "work")
    summary = Trainer(cfg, work, progress=False).train()
    assert summary["best"]["metric"] == "max_f" and summary["best"]["value"] > 0
    for it in ("00000002", "00000004"):
        metric = json.load(open(os.path.join(work, "eval", f"iter_{it}", "metric.json")))
        assert len(metric["sweep"]["thresholds"]) == 11 and metric["fixed"]["decision"] == "argmax"
        assert os.path.getsize(os.path.join(work, "eval", f"iter_{it}", "pr_curve.png")) > 1000
    result = eval_tool.main(["--config", path, "--weights", summary["checkpoint"], "--thresholds", "0:1:21",
                             "--threshold", "0.5", "--decision", "threshold", "--out_dir", str(tmp_path / "ev"),
                             "--no_progress"])
    assert len(result["sweep"]["thresholds"]) == 21 and result["fixed"]["decision"] == "score >= 0.5"
    assert os.path.isfile(tmp_path / "ev" / "metric.json") and os.path.isfile(tmp_path / "ev" / "pr_curve.png")
    rng = np.random.default_rng(0)
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        for name in ("x1.png", "x2.png"):
            Image.fromarray(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)).save(tmp_path / folder / name)
    written = predict_tool.main(["--config", path, "--weights", summary["checkpoint"], "--t0", str(tmp_path / "A"),
                                 "--t1", str(tmp_path / "B"), "--out", str(tmp_path / "pred")])
    assert len(written) == 2
    mask = np.asarray(Image.open(written[0]["label"]))
    assert mask.shape == (16, 20) and set(np.unique(mask)) <= {0, 255}


def test_lsnet_fixed_shape_export_runs_on_the_onednn_deployment_path(tmp_path):
    """LSNet exported at a FIXED 256x256 pair: Paddle 3.3.1's transfer_layout_pass then rewrites the input
    pooling to NHWC, which made the oneDNN predictor fail ('the shape of scale must equal to [256]').
    The deployment path deletes that pass (export.ONEDNN_DELETED_PASSES); the predictor must run, keep
    oneDNN on, and equal dygraph within the float32 bar."""
    cfg = _cfg(str(tmp_path / "lsnet.yml"), _cd_export_config("lsnet", output_index=-1))
    paddle.seed(0)
    model = build_model(cfg)
    model.eval()
    task = build_task(cfg)
    export_model(model, task, str(tmp_path / "lsnet"), [1, 3, 256, 256], "probability", cfg)
    rng = np.random.default_rng(2)
    inputs = [rng.uniform(0, 255, (1, 3, 256, 256)).astype("float32") for _ in range(2)]
    report = check_export(model, task, str(tmp_path / "lsnet"), inputs, "probability", predictors=("on",),
                          cpu_threads=1)
    _assert_equal_outputs(report, ("on",))
    assert report["predictor_onednn_on"]["config"]["onednn"].startswith("on (deleted: ")
