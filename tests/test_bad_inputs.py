"""Bad input across the readers, configs, checkpoints, converter and tools (GitHub issue 8).

Every case checks three things where they apply: the error type, a message that names the file / line /
key and says what was expected, and (command-line cases) exit code 2 with one ``error:`` line and no
partial output. Where the official code silently accepts something (unknown iSAID colours, non-RGB iSAID
images), the parity behaviour stays available and the test checks the warning and its count.

Datasets are written by hand, a few pixels each, in the real layouts (docs/datasets.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest
import torch
from PIL import Image
from pipeline_helpers import seg_config, write_config

import paddle_models
from alignment.convert import ConversionError, load_torch_checkpoint
from paddle_models.engine.checkpoint import CheckpointError, load_checkpoint
from paddle_models.engine.cli import EXIT_CONFIG, run_cli
from paddle_models.engine.run_config import check_run_config, load_run_config
from paddle_models.engine.trainer import Trainer, TrainingDivergedError
from rsrepro.config import ConfigError, load_config
from rsrepro.data.cdd import CDDDataset
from rsrepro.data.cityscapes import CityscapesDataset
from rsrepro.data.errors import DatasetError
from rsrepro.data.isaid import ISAIDDataset
from rsrepro.data.transforms import danet_train_transforms
from tools import convert_weights, prepare_cdd_binary, prepare_isaid_patches
from tools import eval as eval_tool
from tools import predict as predict_tool
from tools import train as train_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 8, 16  # every hand-made image


def _png(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8), mode).save(path)
    return str(path)


def _rgb(seed=0, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _cli(main, argv, capsys):
    """Run a tool in-process through run_cli; returns (exit code, stderr)."""
    code = run_cli(main, argv)
    return code, capsys.readouterr().err


def _one_error_line(err):
    """The tool's message: exactly one ``error:`` (one problem: one line), no traceback."""
    assert "Traceback" not in err and err.count("error: ") == 1, err
    return err[err.index("error: "):].strip()


# ================================================================================ Cityscapes
def _cityscapes(root, n=2, split="train", label_value=7, size=(H, W)):
    for i in range(n):
        stem = f"aachen_000000_{i:06d}"
        _png(os.path.join(root, "leftImg8bit", split, "aachen", f"{stem}_leftImg8bit.png"), _rgb(i, *size))
        _png(os.path.join(root, "gtFine", split, "aachen", f"{stem}_gtFine_labelIds.png"),
             np.full(size, label_value, np.uint8))
    return str(root)


def _cs_image(root, i=0, split="train"):
    return os.path.join(root, "leftImg8bit", split, "aachen", f"aachen_000000_{i:06d}_leftImg8bit.png")


def _cs_label(root, i=0, split="train"):
    return os.path.join(root, "gtFine", split, "aachen", f"aachen_000000_{i:06d}_gtFine_labelIds.png")


def test_cityscapes_truncated_image(tmp_path):
    root = _cityscapes(tmp_path)
    _truncate(_cs_image(root, 1))
    ds = CityscapesDataset(root, "train", mode="val")
    ds[0]  # the good sample still reads
    with pytest.raises(DatasetError, match="truncated or corrupt") as err:
        ds[1]
    assert _cs_image(root, 1) in str(err.value)


def test_cityscapes_zero_byte_label(tmp_path):
    root = _cityscapes(tmp_path)
    open(_cs_label(root, 0), "wb").close()
    with pytest.raises(DatasetError, match=r"label file is empty \(0 bytes\)") as err:
        CityscapesDataset(root, "train", mode="val").validate()
    assert _cs_label(root, 0) in str(err.value)


def test_cityscapes_list_file_names_a_missing_file(tmp_path):
    root = _cityscapes(tmp_path)
    rel = lambda p: os.path.relpath(p, root)  # noqa: E731
    lines = [f"{rel(_cs_image(root, 0))}\t{rel(_cs_label(root, 0))}",
             f"{rel(_cs_image(root, 1))}\tgtFine/train/aachen/nothere_gtFine_labelIds.png"]
    (tmp_path / "train_fine.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"train_fine.txt:2: label file not found: .*nothere"):
        CityscapesDataset(root, "train", list_file="train_fine.txt")


def test_cityscapes_malformed_list_line(tmp_path):
    root = _cityscapes(tmp_path)
    (tmp_path / "list.txt").write_text("a.png\tb.png\tc.png\n")
    with pytest.raises(DatasetError, match=r"list.txt:1: expected '<image path><TAB><label path>', found 3"):
        CityscapesDataset(root, "train", list_file="list.txt")


def test_cityscapes_image_label_size_mismatch(tmp_path):
    root = _cityscapes(tmp_path)
    _png(_cs_label(root, 0), np.full((H, W + 2), 7, np.uint8))
    with pytest.raises(DatasetError, match=r"label size 18x8 \(WxH\) differs from image size 16x8") as err:
        CityscapesDataset(root, "train", mode="val")[0]
    assert _cs_label(root, 0) in str(err.value) and _cs_image(root, 0) in str(err.value)


@pytest.mark.parametrize("mode, words", [("L", "grayscale (1 channel)"), ("RGBA", "RGBA (4 channels)")])
def test_cityscapes_grayscale_or_four_channel_image(tmp_path, mode, words):
    root = _cityscapes(tmp_path)
    Image.fromarray(_rgb(0)).convert(mode).save(_cs_image(root, 0))
    with pytest.raises(DatasetError, match=f"must be 3-channel RGB, found {re.escape(words)}"):
        CityscapesDataset(root, "train", mode="val")[0]
    # parity: the official Image.convert('RGB'), on request, with a warning naming the file
    with pytest.warns(UserWarning, match="converting .* image to RGB"):
        image, _ = CityscapesDataset(root, "train", mode="val", convert_images=True)[0]
    assert image.shape == (3, H, W)


def test_cityscapes_unknown_label_id(tmp_path):
    root = _cityscapes(tmp_path)
    label = np.full((H, W), 7, np.uint8)
    label[0, :3] = 40  # Cityscapes labelIds stop at 33
    _png(_cs_label(root, 1), label)
    with pytest.raises(DatasetError, match=r"values \[40\] that are no Cityscapes labelId \(expected 0..33"):
        CityscapesDataset(root, "train", mode="val")[1]


def test_cityscapes_empty_split(tmp_path):
    root = _cityscapes(tmp_path)
    os.makedirs(os.path.join(root, "leftImg8bit", "val", "aachen"))
    os.makedirs(os.path.join(root, "gtFine", "val", "aachen"))
    with pytest.raises(DatasetError, match="no Cityscapes images found for split 'val'"):
        CityscapesDataset(root, "val")


def test_cityscapes_image_smaller_than_the_crop_is_padded_with_ignore(tmp_path):
    root = _cityscapes(tmp_path, label_value=7)
    ds = CityscapesDataset(root, "train", transform=danet_train_transforms(base_size=8, crop_size=32,
                                                                           scale_range=None), seed=0)
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and label.shape == (32, 32)
    assert set(np.unique(label)) == {0, 255} and (label == 0).sum() == H * W  # road + padding (ignore)


# ================================================================================= CDD / LEVIR
def _cdd(root, n=2, label=None):
    lines = []
    for i in range(n):
        name = f"{i:05d}.png"
        _png(os.path.join(root, "train", "A", name), _rgb(i))
        _png(os.path.join(root, "train", "B", name), _rgb(i + 10))
        mask = np.zeros((H, W), np.uint8) if label is None else label
        mask = mask.copy()
        mask[:2, :2] = 255
        _png(os.path.join(root, "train", "OUT", name), mask)
        lines.append(f"train/A/{name} train/B/{name} train/OUT/{name}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    return root


def test_cdd_malformed_list_line(tmp_path):
    root = _cdd(tmp_path)
    with open(root / "train.txt", "a") as handle:
        handle.write("train/A/00000.png train/B/00000.png\n")
    with pytest.raises(DatasetError, match=r"train.txt:3: expected three space-separated paths .* found 2"):
        CDDDataset(str(root), "train")


def test_cdd_list_names_a_missing_file(tmp_path):
    root = _cdd(tmp_path)
    os.remove(root / "train" / "B" / "00001.png")
    with pytest.raises(DatasetError, match=r"train.txt:2: t1 image file not found: .*B/00001.png"):
        CDDDataset(str(root), "train")


def test_cdd_a_b_size_mismatch(tmp_path):
    root = _cdd(tmp_path)
    _png(root / "train" / "B" / "00001.png", _rgb(3, H, W + 4))
    with pytest.raises(DatasetError, match=r"t0 and t1 images differ in size: 16x8 .* vs 20x8 .*train.txt:2"):
        CDDDataset(str(root), "train")[1]


def test_cdd_image_label_size_mismatch(tmp_path):
    root = _cdd(tmp_path)
    _png(root / "train" / "OUT" / "00000.png", np.zeros((H + 2, W), np.uint8))
    with pytest.raises(DatasetError, match=r"label size 16x10 \(WxH\) differs from image size 16x8"):
        CDDDataset(str(root), "train")[0]


def test_cdd_non_binary_label(tmp_path):
    root = _cdd(tmp_path)
    _png(root / "train" / "OUT" / "00001.png", np.random.default_rng(0).integers(0, 256, (H, W)))
    with pytest.raises(DatasetError, match=r"label is not a binary mask: .* is this an image") as err:
        CDDDataset(str(root), "train")
    assert "00001.png" in str(err.value) and "train.txt:2" in str(err.value)


def test_cdd_four_channel_label(tmp_path):
    root = _cdd(tmp_path)
    Image.fromarray(_rgb(0)).convert("RGBA").save(root / "train" / "OUT" / "00000.png")
    with pytest.raises(DatasetError, match=r"single-channel \(grayscale\) mask, found RGBA \(4 channels\)"):
        CDDDataset(str(root), "train")


def test_cdd_truncated_image(tmp_path):
    root = _cdd(tmp_path)
    _truncate(root / "train" / "A" / "00001.png")
    with pytest.raises(DatasetError, match=r"truncated or corrupt .*A/00001.png \(listed at .*train.txt:2\)"):
        CDDDataset(str(root), "train")[1]


def test_cdd_empty_split(tmp_path):
    root = _cdd(tmp_path)
    (root / "train.txt").write_text("\n\n")
    with pytest.raises(DatasetError, match=r"list file has no entries \(empty split\)"):
        CDDDataset(str(root), "train")
    os.makedirs(root / "val" / "A")
    os.makedirs(root / "val" / "B")
    os.makedirs(root / "val" / "OUT")
    with pytest.raises(DatasetError, match=r"no images found for split 'val' \(empty split\)"):
        CDDDataset(str(root), "val", layout="folder")


# ======================================================================================= iSAID
SHIP, UNKNOWN = (0, 0, 63), (10, 20, 30)


def _isaid(root, image=None, mask=None):
    image = _rgb(0) if image is None else image
    _png(os.path.join(root, "train", "images", "P0000.png"), image)
    if mask is None:
        mask = np.zeros(image.shape[:2] + (3,), np.uint8)
        mask[:2, :2] = SHIP
    if mask is not False:
        _png(os.path.join(root, "train", "masks", "P0000_instance_color_RGB.png"), mask)
    return str(root)


def test_isaid_unknown_colour_warns_with_count_and_keeps_official_decoding(tmp_path):
    mask = np.zeros((H, W, 3), np.uint8)
    mask[:2, :2] = SHIP
    mask[5, :7] = UNKNOWN
    root = _isaid(tmp_path, mask=mask)
    with pytest.warns(UserWarning, match=r"P0000_instance_color_RGB.png: 7 pixels with colours outside the "
                                         r"iSAID palette \(\(10, 20, 30\) x7\)"):
        image, label = ISAIDDataset(root, "train", mode="val", raw=True)[0]
    assert (label[:2, :2] == 1).all() and (label[5, :7] == 0).all()  # official: unknown -> background
    with pytest.raises(DatasetError, match=r"mask has 7 pixels with colours outside .*on_unknown='warn'"):
        ISAIDDataset(root, "train", mode="val", on_unknown="error")[0]


def test_isaid_missing_mask(tmp_path):
    root = _isaid(tmp_path, mask=False)
    with pytest.raises(DatasetError, match=r"1 iSAID image\(s\) in .* have no mask; first: P0000.png"):
        ISAIDDataset(root, "train")


def test_isaid_mask_size_mismatch(tmp_path):
    root = _isaid(tmp_path, mask=np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"mask size 16x9 \(WxH\) differs from image size 16x8"):
        ISAIDDataset(root, "train", mode="val")[0]


def test_isaid_zero_byte_mask(tmp_path):
    root = _isaid(tmp_path)
    open(os.path.join(root, "train", "masks", "P0000_instance_color_RGB.png"), "wb").close()
    with pytest.raises(DatasetError, match=r"empty \(0 bytes\): .*P0000_instance_color_RGB.png"):
        ISAIDDataset(root, "train", mode="val")[0]


def test_isaid_grayscale_image_converted_like_official_or_refused(tmp_path):
    root = _isaid(tmp_path, image=_rgb(0)[:, :, 0])
    with pytest.warns(UserWarning, match=r"converting grayscale \(1 channel\) image to RGB: .*P0000.png"):
        image, _ = ISAIDDataset(root, "train", mode="val", raw=True)[0]
    assert image.shape == (H, W, 3)
    with pytest.raises(DatasetError, match="must be 3-channel RGB, found grayscale"):
        ISAIDDataset(root, "train", mode="val", convert_images=False)[0]


def test_isaid_image_smaller_than_the_window_is_one_padded_window(tmp_path):
    root = _isaid(tmp_path)
    ds = ISAIDDataset(root, "train", window=32, stride=16, seed=0)
    assert len(ds) == 1
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and label.shape == (32, 32)
    assert (label == 255).sum() == 32 * 32 - H * W and (label == 1).sum() == 4


def test_isaid_empty_split(tmp_path):
    os.makedirs(tmp_path / "train" / "images")
    with pytest.raises(DatasetError, match=r"no iSAID images \(\*.png\) in .*train/images"):
        ISAIDDataset(str(tmp_path), "train")


# ===================================================================================== configs
@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    """A config of the tiny segmentation model on a 4 + 2 image Cityscapes (16 x 16)."""
    root = tmp_path_factory.mktemp("tiny")
    data = _cityscapes(root / "data", n=4, size=(16, 16))
    _cityscapes(root / "data", n=2, split="val", size=(16, 16))
    cfg = seg_config(data, iters=2, save_interval=0)
    cfg["dataset"]["train"]["transforms"][0].update(base_size=16, crop_size=16)
    return write_config(str(root / "tiny.yml"), cfg), cfg


def test_config_mistyped_keys_in_file_and_override(tmp_path, tiny_cfg):
    cfg = {**tiny_cfg[1], "train": {**tiny_cfg[1]["train"], "batchsize": 2}}
    path = write_config(str(tmp_path / "typo.yml"), cfg)
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.iterz=3", "train.iters=abc"])
    text = str(err.value)
    assert "3 config problems" in text
    assert f"{path}: train.batchsize: unknown key; did you mean 'batch_size'?" in text
    assert "override 'train.iterz=3': train.iterz: unknown key; did you mean 'iters'?" in text
    assert "override 'train.iters=abc': train.iters: expected int, got str 'abc'" in text


def test_config_unknown_model_argument_and_class_count(tmp_path, tiny_cfg):
    cfg = {**tiny_cfg[1], "model": {"type": "pipeline_tiny_seg", "num_classes": 7, "widht": 4}}
    path = write_config(str(tmp_path / "model.yml"), cfg)
    with pytest.raises(ConfigError) as err:
        check_run_config(load_config(path))
    text = str(err.value)
    assert "model.widht" in text and "width" in text
    assert "model.num_classes: 7 but dataset 'cityscapes' has 19 classes" in text


def test_config_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("train:\n  iters: 3\n  batch_size: [1, 2\nmodel: {}\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config(str(path))


# ============================================================================ checkpoints
@pytest.fixture(scope="module")
def trained(tiny_cfg, tmp_path_factory):
    """A 2-iteration run of the tiny model (width 8): its work dir and final checkpoint."""
    work = str(tmp_path_factory.mktemp("trained") / "run")
    summary = Trainer(load_run_config(tiny_cfg[0]), work, progress=False).train()
    return work, summary["checkpoint"]


def _other_cfg(tmp_path, tiny_cfg, **model):
    cfg = {**tiny_cfg[1], "model": {"type": "pipeline_tiny_seg", "num_classes": 19, **model}}
    return load_run_config(write_config(str(tmp_path / "other.yml"), cfg))


def test_resume_with_checkpoint_of_another_architecture(tmp_path, tiny_cfg, trained):
    cfg = _other_cfg(tmp_path, tiny_cfg, width=16)  # same keys, other shapes
    with pytest.raises(CheckpointError) as err:
        Trainer(cfg, str(tmp_path / "w16"), resume=trained[1], progress=False)
    text = str(err.value)
    assert "shape mismatch (11)" in text and "stem.0.weight: checkpoint [8, 3, 3, 3] vs model [16, 3, 3, 3]" in text
    assert "written for model {'type': 'pipeline_tiny_seg'" in text
    assert not os.path.exists(tmp_path / "w16")  # nothing left behind


def test_resume_with_checkpoint_of_another_model(tmp_path, tiny_cfg, trained):
    cfg = _other_cfg(tmp_path, tiny_cfg, num_outputs=2)  # one head fewer: unexpected keys
    with pytest.raises(CheckpointError, match=r"unexpected \(2\): \['heads.2.weight', 'heads.2.bias'\]"):
        Trainer(cfg, str(tmp_path / "two"), resume=trained[1], progress=False)


def test_truncated_and_empty_checkpoint(tmp_path, trained):
    data = open(trained[1], "rb").read()
    cut = tmp_path / "iter_00000002.pdckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"cannot read checkpoint {cut} \(truncated or not a checkpoint"):
        load_checkpoint(str(cut))
    cut.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"checkpoint is empty \(0 bytes\)"):
        load_checkpoint(str(cut))


@pytest.mark.parametrize("case", ["truncated", "other_architecture", "whole_model_pickle"])
def test_eval_cli_refuses_bad_weights(tmp_path, tiny_cfg, trained, capsys, case):
    state = paddle.load(trained[1])["model"]
    weights = str(tmp_path / "w.pdparams")
    if case == "whole_model_pickle":  # an official LSNet-style .pth: refused, with the reason and the way out
        weights = str(tmp_path / "w.pth")
        torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), weights)
        expected = "can execute code when loaded. If you trust its source, convert it once with " \
                   "tools/convert_weights.py --trust-pickle"
    elif case == "truncated":
        paddle.save(state, weights)
        _truncate(weights)
        expected = "can not parse the file"
    else:
        paddle.save(paddle_models.build_model("pipeline_tiny_seg", width=4).state_dict(), weights)
        expected = "does not fit the model"
    out = tmp_path / "metrics.json"
    code, err = _cli(eval_tool.main, ["--config", tiny_cfg[0], "--weights", weights, "--out", str(out),
                                      "--no_progress"], capsys)
    line = _one_error_line(err)
    assert code == EXIT_CONFIG and weights in line and expected in err
    assert not out.exists()


# ==================================================================================== converter
def test_converter_refuses_whole_model_pickle_unless_trusted(tmp_path, capsys):
    src, dst = tmp_path / "lsnet_official.pth", tmp_path / "out.pdparams"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)), src)  # a whole pickled model, as LSNet's
    code = convert_weights.main(["--model", "lsnet", "--src", str(src), "--dst", str(dst)])
    err = capsys.readouterr().err
    assert code == 2 and not dst.exists()
    assert "refused to unpickle (weights_only=True)" in err and "can execute code" in err
    assert "--trust-pickle" in err
    assert set(load_torch_checkpoint(str(src), trust_pickle=True)) == {"0.weight", "0.bias"}


def test_converter_truncated_and_other_architecture(tmp_path, capsys):
    src, dst = tmp_path / "w.pth", tmp_path / "out.pdparams"
    torch.save({"state_dict": torch.nn.Conv2d(3, 4, 3).state_dict()}, src)
    code = convert_weights.main(["--model", "lsnet", "--src", str(src), "--dst", str(dst)])
    err = capsys.readouterr().err
    assert code == 2 and not dst.exists()
    assert "checkpoint does not match the model" in err and "unexpected in checkpoint (2)" in err
    _truncate(src)
    with pytest.raises(ConversionError, match=r"not a readable torch checkpoint \(truncated or corrupt"):
        load_torch_checkpoint(str(src))


def test_converter_output_folder_not_writable(tmp_path, capsys):
    src = tmp_path / "w.pth"
    torch.save(paddle_state_as_torch("pipeline_tiny_seg"), src)
    (tmp_path / "file").write_text("")
    dst = tmp_path / "file" / "out.pdparams"  # its folder is a file
    code = convert_weights.main(["--model", "pipeline_tiny_seg", "--src", str(src), "--dst", str(dst)])
    err = capsys.readouterr().err
    assert code == 2 and "is not a directory" in err and str(tmp_path / "file") in err


def paddle_state_as_torch(name):
    state = paddle_models.build_model(name).state_dict()
    renames = {"_mean": "running_mean", "_variance": "running_var"}
    out = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        out[f"{prefix}.{renames.get(leaf, leaf)}"] = torch.from_numpy(value.numpy())
    return out


# ============================================================================ NaN / Inf inputs
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_inputs_stop_training_naming_the_batch(tmp_path, tiny_cfg, value):
    trainer = Trainer(load_run_config(tiny_cfg[0]), str(tmp_path / "run"), progress=False)
    real = trainer.loader

    class Poisoned:
        def __iter__(self):
            for i, (image, label) in enumerate(real):
                if i == 1:
                    image = image.clone()
                    image[0, 0, :2, :3] = value
                yield image, label

    trainer.loader = Poisoned()
    with pytest.raises(TrainingDivergedError) as err:
        trainer.train()
    text = str(err.value)
    assert "diverged at iteration 2" in text and "the batch itself holds 6 non-finite input value(s)" in text
    assert "No checkpoint was saved before it" in text


def test_non_finite_gradient_with_finite_loss_stops_before_the_step(tmp_path, tiny_cfg):
    """sqrt at 0: the loss stays finite, its gradient is NaN; the weights must not take the step."""
    cfg = load_run_config(tiny_cfg[0], ["train.iters=3", "train.save_interval=1"])
    trainer = Trainer(cfg, str(tmp_path / "run"), progress=False)
    real, calls = trainer.loss_fn, []

    def poisoned(outputs, labels):
        calls.append(1)
        loss = real(outputs, labels)
        return loss + 0.0 * paddle.sqrt(outputs[0].abs().sum() * 0.0) if len(calls) == 2 else loss

    trainer.loss_fn = poisoned
    before = {n: p.numpy().copy() for n, p in trainer.model.named_parameters() if not p.stop_gradient}
    with pytest.raises(TrainingDivergedError) as err:
        trainer.train()
    text = str(err.value)
    assert "diverged at iteration 2" in text and "non-finite gradient in 8 parameter(s)" in text  # stem + heads.0
    assert "checkpoints/iter_00000001.pdckpt (kept)" in text
    saved = load_checkpoint(os.path.join(tmp_path, "run", "checkpoints", "iter_00000001.pdckpt"))["model"]
    assert len(before) == 12  # trainable ones (BN statistics saw the failed batch, as the message says)
    for name in before:  # iteration 1's step was taken, iteration 2's was not
        np.testing.assert_array_equal(trainer.model.state_dict()[name].numpy(), saved[name].numpy())
    assert any(not np.array_equal(value, saved[name].numpy()) for name, value in before.items())


# ================================================================== tools: exits, output folders
def test_train_cli_bad_data_exits_2_and_leaves_no_work_dir(tmp_path, tiny_cfg, capsys):
    work = tmp_path / "run"
    code, err = _cli(train_tool.main, ["--config", tiny_cfg[0], "--work_dir", str(work), "--no_progress",
                                       "-o", f"dataset.train.root={tmp_path / 'missing'}"], capsys)
    line = _one_error_line(err)
    assert code == EXIT_CONFIG and "dataset.train.root" in line and str(tmp_path / "missing") in line
    code, err = _cli(train_tool.main, ["--config", tiny_cfg[0], "--work_dir", str(work), "--no_progress",
                                       "-o", "dataset.train.split=val", "train.batch_size=4"], capsys)
    line = _one_error_line(err)
    assert code == EXIT_CONFIG and "fewer than one batch" in line
    assert not work.exists()


def test_train_cli_work_dir_not_writable(tmp_path, tiny_cfg, capsys):
    (tmp_path / "file").write_text("")
    code, err = _cli(train_tool.main, ["--config", tiny_cfg[0], "--work_dir", str(tmp_path / "file" / "run"),
                                       "--no_progress"], capsys)
    line = _one_error_line(err)
    assert code == EXIT_CONFIG and "Not a directory" in line and str(tmp_path / "file") in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into a read-only folder")
def test_train_cli_read_only_folder(tmp_path, tiny_cfg, capsys):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    code, err = _cli(train_tool.main, ["--config", tiny_cfg[0], "--work_dir", str(folder / "run"),
                                       "--no_progress"], capsys)
    assert code == EXIT_CONFIG and "Permission denied" in _one_error_line(err)


def test_predict_cli_bad_image_leaves_no_partial_output(tmp_path, tiny_cfg, trained, capsys):
    images = tmp_path / "images"
    for i in range(3):
        _png(str(images / f"img{i}.png"), _rgb(i, 16, 16))
    _truncate(images / "img2.png")  # the last one: two images are written before it fails
    out = tmp_path / "pred"
    code, err = _cli(predict_tool.main, ["--config", tiny_cfg[0], "--weights", trained[1], "--images",
                                         str(images), "--out", str(out)], capsys)
    line = _one_error_line(err)
    assert code == EXIT_CONFIG and "truncated or corrupt" in line and "img2.png" in line
    assert not out.exists()
    (tmp_path / "file").write_text("")
    code, err = _cli(predict_tool.main, ["--config", tiny_cfg[0], "--weights", trained[1], "--images",
                                         str(images / "img0.png"), "--out", str(tmp_path / "file")], capsys)
    assert code == EXIT_CONFIG and str(tmp_path / "file") in _one_error_line(err)


def test_prepare_tools_report_bad_files(tmp_path, capsys):
    with pytest.raises(DatasetError, match=rf"CDD root folder not found: {tmp_path / 'nope'}"):
        prepare_cdd_binary.main(["--root", str(tmp_path / "nope"), "--split", "train"])
    root = _cdd(tmp_path / "cdd")
    _truncate(root / "train" / "OUT" / "00001.png")
    with pytest.raises(DatasetError, match=r"1 label file\(s\) could not be read .*OUT/00001.png"):
        prepare_cdd_binary.main(["--root", str(root), "--split", "train"])
    isaid = _isaid(tmp_path / "isaid", mask=False)
    code = prepare_isaid_patches.main(["--root", isaid, "--out", str(tmp_path / "patches"), "--split", "train"])
    err = capsys.readouterr().err
    assert code == 2 and "have no mask; first: P0000.png" in err
    assert not (tmp_path / "patches").exists()


def test_cli_subprocess_exit_code_and_single_error_line(tmp_path, tiny_cfg):
    """The real command line: a mistyped key, exit 2, one error line naming key and file, no traceback."""
    cfg = {**tiny_cfg[1], "optimizer": {**tiny_cfg[1]["optimizer"], "momentun": 0.9}}
    path = write_config(str(tmp_path / "typo.yml"), cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOG_minloglevel": "2"}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py"), "--config", path,
                           "--work_dir", str(tmp_path / "run")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = _one_error_line(proc.stderr)
    assert f"{path}: optimizer.momentun: unknown key; did you mean 'momentum'?" in line
    assert not (tmp_path / "run").exists()
