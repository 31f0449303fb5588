"""FactSeg through the pipeline on a tiny synthetic iSAID: the real config file trains (tools/train.py),
evaluates with the streamed official protocol (periodic, final, tools/eval.py), picks the best model,
and exports / deploys (tools/export.py, tools/infer.py) with the output of dygraph; tools/infer.py and
tools/predict.py give the labels of tools/eval.py's evaluator (same windows, normalisation and padding),
also for an image whose sides are not multiples of 32.

One module-scoped run (2 iterations of FactSeg-R50, batch 2, 64 px windows) serves every test."""

from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
from PIL import Image

from paddle_models.engine import infer as engine_infer
from paddle_models.engine import predict as engine_predict
from rsrepro.isaid import DEVKIT_CLASS_NAMES, MEAN, STD
from torch_ref.datasets.isaid import sliding_window

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "configs", "factseg", "factseg_r50_synthetic.yml")
VAL_SIZES = [(128, 128), (40, 72)]  # overlapping shifted windows; one image smaller than the window


def _overrides(root: str, work: str) -> list:
    return [f"dataset.train.root={root}", f"dataset.val.root={root}", "dataset.train.window=64",
            "dataset.train.stride=64", "dataset.train.transforms=[{type: FactSegTrain, crop_size: 64}]",
            "train.iters=2", "train.batch_size=2", "train.eval_interval=1", "train.log_interval=1",
            "train.save_interval=0", "train.plot=false", "eval.crop_size=64", "eval.stride=48", f"work_dir={work}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from rsrepro.data.synthetic import generate_isaid
    from tools import train as train_tool

    base = tmp_path_factory.mktemp("factseg")
    root = generate_isaid(str(base / "isaid"), num_train=1, num_val=2, sizes=[(128, 128)] + VAL_SIZES,
                          num_objects=(4, 8), seed=1)["root"]
    work = str(base / "work")
    opts = _overrides(root, work)
    summary = train_tool.main(["--config", CONFIG, "--no_progress", "-o", *opts])
    return {"root": root, "work": work, "opts": opts, "summary": summary, "base": base}


def _model(run, weights):
    from paddle_models.engine.builder import build_model
    from paddle_models.engine.run_config import load_run_config
    from paddle_models.engine.weights import load_weights

    cfg = load_run_config(CONFIG, run["opts"])
    model = build_model(cfg)
    load_weights(model, weights)
    model.eval()
    return cfg, model


def _brute_force_labels(model, image, window=64, stride=48, divisor=32):
    """Independent full-canvas merge: official window boxes, numpy normalisation, zero padding after it."""
    h, w = image.shape[:2]
    canvas = np.zeros((16, h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    for x1, y1, x2, y2 in sliding_window((h, w), (window, window), stride).tolist():
        x = (image[y1:y2, x1:x2].astype(np.float32) - np.float32(MEAN)) / np.float32(STD)
        ph, pw = -(-(y2 - y1) // divisor) * divisor, -(-(x2 - x1) // divisor) * divisor
        padded = np.zeros((1, 3, ph, pw), np.float32)
        padded[0, :, :y2 - y1, :x2 - x1] = x.transpose(2, 0, 1)
        with paddle.no_grad():
            prob = model(paddle.to_tensor(padded)).numpy()[0]
        canvas[:, y1:y2, x1:x2] += prob[:, :y2 - y1, :x2 - x1]
        count[y1:y2, x1:x2] += 1
    return np.argmax(canvas / count, axis=0)


@pytest.fixture(scope="module")
def best(run):
    return json.load(open(os.path.join(run["work"], "best_model.json")))["path"]


@pytest.fixture(scope="module")
def exported(run, best):
    from tools import export as export_tool

    exp = str(run["base"] / "export")
    result = export_tool.main(["--config", CONFIG, "--weights", best, "--out", exp, "--check", "64", "96",
                               "-o", *run["opts"]])
    return exp, result


@pytest.fixture(scope="module")
def evaluated(run, best):
    """Label maps of tools/eval.py's evaluator (the task's FactSegEvaluator on the val dataset), by stem."""
    from paddle_models.engine.builder import build_dataset
    from paddle_models.engine.factseg_eval import FactSegEvaluator
    from paddle_models.engine.tasks import build_task
    from rsrepro.metrics import ConfusionMatrix

    cfg, model = _model(run, best)
    dataset = build_dataset(cfg, "val")
    evaluator = build_task(cfg).build_evaluator(dataset)
    assert isinstance(evaluator, FactSegEvaluator)
    labels = {}
    for index in range(len(dataset)):
        image, label = dataset[index]
        labels[f"P{index + 1:04d}"] = evaluator.protocol.update(ConfusionMatrix(16, 255), model, image, label,
                                                                keep_prediction=True)
    assert [v.shape for v in labels.values()] == VAL_SIZES
    return labels


def _read_rgb(run, stem):
    return np.asarray(Image.open(os.path.join(run["root"], "val", "images", f"{stem}.png")).convert("RGB"))


def test_train_checkpoint_best_model_and_factseg_eval_json(run):
    from paddle_models.engine.builder import build_dataset
    from paddle_models.engine.factseg_eval import FactSegEvaluator
    from paddle_models.engine.run_config import load_run_config
    from paddle_models.engine.tasks import build_task

    cfg = load_run_config(CONFIG, run["opts"])
    evaluator = build_task(cfg).build_evaluator(build_dataset(cfg, "val"))
    assert isinstance(evaluator, FactSegEvaluator)  # selected by eval.window_rule, not by the model name
    assert evaluator.protocol.window == (64, 64) and evaluator.protocol.stride == (48, 48)
    assert evaluator.protocol.mean == MEAN and evaluator.protocol.std == STD  # NormalizePixels', 0-255 scale
    summary, work = run["summary"], run["work"]
    assert summary["finished"] and os.path.isfile(summary["checkpoint"])
    best = json.load(open(os.path.join(work, "best_model.json")))
    assert best["metric"] == "miou" and os.path.isfile(best["path"]) and best["iteration"] in (1, 2)
    for it in (1, 2):  # periodic evaluation at 1, final at 2
        result = json.load(open(os.path.join(work, "eval", f"iter_{it:08d}.json")))
        ious = [row["iou"] for row in result["per_class"]]
        assert [row["name"] for row in result["per_class"]] == list(DEVKIT_CLASS_NAMES) and len(ious) == 16
        assert result["miou"] == pytest.approx(np.mean(ious)) and result["fg_miou"] == pytest.approx(np.mean(ious[1:]))
        assert result["fg_start"] == 1 and "devkit" in result["naming_note"]
        assert result["protocol"]["window_rule"] == "factseg" and result["protocol"]["size_divisor"] == 32
        assert np.asarray(result["confusion_matrix"]).sum() == sum(h * w for h, w in VAL_SIZES)
    history = [json.loads(line) for line in open(os.path.join(work, "history.jsonl"))]
    evals = {r["iter"]: r["metrics"] for r in history if r["type"] == "eval"}
    assert sorted(evals) == [1, 2] and all("fg_miou" in m for m in evals.values())
    assert best["value"] == pytest.approx(max(m["miou"] for m in evals.values()))
    log = open(os.path.join(work, "train.log")).read()
    assert log.count("foreground mIoU") == 2 and log.count(" 12  storage_tank ") == 2  # table at every eval


def test_eval_tool_streaming_equals_brute_force_full_canvas(run):
    from paddle_models.engine.tasks import build_task
    from rsrepro.data.isaid import NormalizePixels
    from tools import eval as eval_tool

    best = json.load(open(os.path.join(run["work"], "best_model.json")))["path"]
    out = str(run["base"] / "eval.json")
    eval_tool.main(["--config", CONFIG, "--weights", best, "--out", out, "--no_progress", "-o", *run["opts"]])
    result = json.load(open(out))
    cfg, model = _model(run, best)
    task = build_task(cfg)
    protocol = task.protocol(None, cfg["eval"])
    matrix = np.zeros((16, 16), np.int64)
    labels_of_first = None
    for index, size in enumerate(VAL_SIZES):
        stem = f"P{index + 1:04d}"
        image = np.asarray(Image.open(os.path.join(run["root"], "val", "images", f"{stem}.png")).convert("RGB"))
        assert image.shape[:2] == size
        mask = np.asarray(Image.open(os.path.join(run["root"], "val", "masks", f"{stem}_instance_color_RGB.png")))
        from rsrepro.isaid import decode_color_mask

        truth, _ = decode_color_mask(mask)
        pred = _brute_force_labels(model, image)
        labels_of_first = pred if labels_of_first is None else labels_of_first
        # the generic dygraph path (tools/predict.py) with the same rule pads with zeros too: same labels
        generic = task.predict(model, [paddle.to_tensor(NormalizePixels()(image, None)[0][None])], protocol)[0]
        np.testing.assert_array_equal(generic, pred)
        matrix += np.bincount(truth.astype(np.int64).ravel() * 16 + pred.ravel(), minlength=256).reshape(16, 16)
    assert len(np.unique(labels_of_first)) > 1  # a non-constant map, so the comparison can tell windows apart
    np.testing.assert_array_equal(np.asarray(result["confusion_matrix"]), matrix)
    inter = np.diag(matrix).astype(np.float64)
    iou = inter / np.maximum(matrix.sum(0) + matrix.sum(1) - inter, 1)
    assert result["miou"] == pytest.approx(iou.mean()) and result["fg_miou"] == pytest.approx(iou[1:].mean())


def test_export_and_infer_equal_dygraph(run, best, exported, evaluated):
    import yaml

    from paddle_models.engine.export import create_predictor, inference_model, run_predictor
    from paddle_models.engine.tasks import build_task
    from rsrepro.data.isaid import NormalizePixels
    from tools import infer as infer_tool

    exp, result = exported
    for key in ("jit_load", "predictor_onednn_off"):
        entry = result["check"]["export_check"][key]
        assert "error" not in entry and entry["max_rel_diff"] <= 1e-5, (key, entry)
    info = yaml.safe_load(open(os.path.join(exp, "deploy.yml")))
    assert info["output"] == "probability"
    assert info["normalize"] == {"mean": list(MEAN), "std": list(STD), "scale": 1.0}  # NormalizePixels, exactly
    assert info["class_names"] == list(DEVKIT_CLASS_NAMES)
    assert info["size_divisor"] == 32
    assert info["window"] == {"rule": "factseg", "window": [64, 64], "stride": [48, 48], "size_divisor": 32,
                              "mean": list(MEAN), "std": list(STD), "num_classes": 16}  # the eval protocol
    image_path = os.path.join(run["root"], "val", "images", "P0001.png")
    image = np.asarray(Image.open(image_path).convert("RGB"))
    # the deployed input is bit-identical to the dataset's, and the deployed output equals dygraph
    x, _ = NormalizePixels()(image, None)
    assert np.array_equal(engine_infer.normalize(image, info)[0], x)
    cfg, model = _model(run, best)
    with paddle.no_grad():
        dygraph = inference_model(model, build_task(cfg), "probability")(paddle.to_tensor(x[None])).numpy()
    with paddle.no_grad():  # the exported head is the model's own fused probability (not re-softmaxed)
        np.testing.assert_array_equal(dygraph, model(paddle.to_tensor(x[None])).numpy())
    assert dygraph.shape == (1, 16, 128, 128)
    predictor, _ = create_predictor(exp, onednn="off")
    deployed = run_predictor(predictor, [engine_infer.normalize(image, info)])
    assert np.abs(deployed - dygraph).max() <= 1e-5
    from rsrepro.visualize import colorize

    # default: the evaluation's windows (3 x 3 windows of 64 at stride 48 here) -> the evaluator's labels;
    # --whole_image: one pass -> dygraph's whole-image labels; the two differ, so each check can tell
    argv = ["--model_dir", exp, "--images", image_path, "--cpu_threads", "1", "--onednn", "off"]
    out = infer_tool.main(argv + ["--out", str(run["base"] / "inf")])
    assert np.array_equal(np.asarray(Image.open(out["written"][0])), colorize(evaluated["P0001"], info["palette"]))
    whole = infer_tool.main(argv + ["--out", str(run["base"] / "inf_whole"), "--whole_image"])
    assert np.array_equal(np.asarray(Image.open(whole["written"][0])), colorize(dygraph[0].argmax(0), info["palette"]))
    assert not np.array_equal(evaluated["P0001"], dygraph[0].argmax(0))


def test_infer_pads_sizes_not_multiple_of_32_and_equals_eval(run, best, exported, evaluated):
    """40 x 72 (neither side a multiple of 32): the predictor alone fails inside Paddle; tools/infer.py
    zero-pads after normalisation and crops, giving the evaluator's labels (windows 40x64, padded to
    64x64) and, with --whole_image, dygraph's labels of the zero-padded image."""
    from paddle_models.engine.export import create_predictor, load_deploy_info, run_predictor
    from rsrepro.visualize import colorize
    from tools import infer as infer_tool

    exp, _ = exported
    info = load_deploy_info(exp)
    image = _read_rgb(run, "P0002")
    assert image.shape[:2] == (40, 72)
    predictor, _ = create_predictor(exp, onednn="off")
    x = engine_infer.normalize(image, info)
    with pytest.raises(Exception):  # noqa: B017 (Paddle's C++ shape error; the deploy used to get this)
        run_predictor(predictor, [x])
    labels = engine_infer.segment(predictor, image, info)
    np.testing.assert_array_equal(labels, evaluated["P0002"])
    padded = np.zeros((1, 3, 64, 96), np.float32)  # zeros after normalisation, bottom / right
    padded[:, :, :40, :72] = x
    _, model = _model(run, best)
    with paddle.no_grad():
        dygraph = model(paddle.to_tensor(padded)).numpy()[0, :, :40, :72].argmax(0)
    whole = engine_infer.segment(predictor, image, info, whole_image=True)
    assert whole.shape == (40, 72)
    np.testing.assert_array_equal(whole, dygraph)
    path = os.path.join(run["root"], "val", "images", "P0002.png")
    out = infer_tool.main(["--model_dir", exp, "--images", path, "--out", str(run["base"] / "inf_odd"),
                           "--cpu_threads", "1", "--onednn", "off"])
    assert np.array_equal(np.asarray(Image.open(out["written"][0])), colorize(evaluated["P0002"], info["palette"]))
    # a label export cannot merge windows: refused by name for an image larger than one window
    with pytest.raises(ValueError, match=r"cannot be merged across the 2 sliding windows of a 40x72 image"):
        engine_infer.segment(predictor, image, {**info, "output": "label"})


def test_predict_labels_equal_the_evaluator(run, best, evaluated, monkeypatch):
    """tools/predict.py with the FactSeg config: NormalizePixels (0-255 scale) and the streamed windows,
    so its label PNGs are the evaluator's prediction for both val images (one not a multiple of 32)."""
    from paddle_models.engine.run_config import load_run_config
    from paddle_models.engine.tasks import SegmentationTask, build_task
    from rsrepro.data.isaid import ISAIDDataset, NormalizePixels
    from rsrepro.data.transforms import val_transforms
    from tools import predict as predict_tool

    def full_canvas(*args, **kwargs):
        raise AssertionError("FactSeg prediction took the full-canvas path")

    monkeypatch.setattr(SegmentationTask, "predict", full_canvas)
    folder = os.path.join(run["root"], "val", "images")
    records = predict_tool.main(["--config", CONFIG, "--weights", best, "--images", folder,
                                 "--out", str(run["base"] / "predict"), "-o", *run["opts"]])
    assert [os.path.basename(r["image"]) for r in records] == ["P0001.png", "P0002.png"]
    for record in records:
        stem = os.path.splitext(os.path.basename(record["image"]))[0]
        np.testing.assert_array_equal(np.asarray(Image.open(record["label"])), evaluated[stem])
    cfg = load_run_config(CONFIG, run["opts"])
    windows = engine_predict.segmentation_window_protocol(cfg, build_task(cfg), ISAIDDataset)
    assert (windows.mean, windows.std, windows.window, windows.stride) == (MEAN, STD, (64, 64), (48, 48))
    # why the normalisation matters: DANet's ImageNet /255 step (what predict.py used to feed FactSeg) is
    # the same map in exact arithmetic but not in float32, so near-tie labels could differ from eval's
    image = _read_rgb(run, "P0001")
    old, new = val_transforms()(image, None)[0], NormalizePixels()(image, None)[0]
    assert not np.array_equal(old, new) and np.abs(old - new).max() < 1e-5
    assert np.array_equal(windows.normalized_window(image, (0, 128, 0, 128)), new)


def test_config_refuses_what_the_factseg_protocol_cannot_do(run):
    from paddle_models.engine.run_config import load_run_config
    from rsrepro.config import ConfigError

    with pytest.raises(ConfigError, match=r"eval.flip: eval.window_rule 'factseg'") as info:
        load_run_config(CONFIG, run["opts"] + ["eval.flip=true", "eval.scales=[0.5, 1.0]"])
    assert "eval.scales" in str(info.value)
    with pytest.raises(ConfigError, match="no logits to export"):
        load_run_config(CONFIG, run["opts"] + ["export.output=logits"])
