"""Weight conversion: official wrappers, strict checking, torchvision backbones, untrusted files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import torch

import paddle_models
import torch_ref
from alignment.convert import ConversionError, convert_state_dict, load_torch_checkpoint

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = json.loads((ROOT / "alignment" / "reference" / "official_keys.json").read_text())


def fake_official_checkpoint(name: str, seed: int = 0):
    """Random tensors under exactly the official keys and shapes (what a released file holds)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in OFFICIAL[name]:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            sd[key] = 0.5 + torch.rand(shape, generator=gen)
        else:
            sd[key] = 0.05 * torch.randn(shape, generator=gen)
    return sd


@pytest.mark.parametrize("wrapper", ["state_dict", "plain", "module"])
def test_official_danet_checkpoint_loads_strict_and_converts(tmp_path, wrapper):
    sd = fake_official_checkpoint("danet_r50")
    obj = {"state_dict": sd, "epoch": 3} if wrapper == "state_dict" else sd
    if wrapper == "module":
        obj = {"model": {f"module.{k}": v for k, v in sd.items()}}
    path = tmp_path / "DANet50.pth.tar"
    torch.save(obj, path)
    loaded = load_torch_checkpoint(str(path))
    torch_model = torch_ref.build_model("danet")
    torch_model.load_state_dict(loaded, strict=True)
    paddle_model = paddle_models.build_model("danet")
    paddle_model.set_state_dict(convert_state_dict(loaded, paddle_model))
    np.testing.assert_array_equal(paddle_model.head.conv5a[1]._variance.numpy(),
                                  sd["head.conv5a.1.running_var"].numpy())
    np.testing.assert_array_equal(paddle_model.pretrained.fc.weight.numpy(), sd["pretrained.fc.weight"].numpy().T)


def test_mismatch_error_lists_missing_unexpected_and_shapes():
    sd = fake_official_checkpoint("danet_r50")
    sd.pop("head.sa.gamma")
    sd["head.extra.weight"] = torch.zeros(3)
    sd["head.conv6.1.weight"] = torch.zeros(21, 512, 1, 1)
    with pytest.raises(ConversionError) as err:
        convert_state_dict(sd, paddle_models.build_model("danet"))
    text = str(err.value)
    assert "missing in checkpoint (1)" in text and "head.sa.gamma" in text
    assert "unexpected in checkpoint (1)" in text and "head.extra.weight" in text
    assert "shape mismatch (1)" in text and "[21, 512, 1, 1] vs model [19, 512, 1, 1]" in text


def test_checkpoint_of_another_architecture_is_refused():
    with pytest.raises(ConversionError, match="missing in checkpoint"):
        convert_state_dict(fake_official_checkpoint("danet_r50"),
                           paddle_models.build_model("danet", backbone="resnet101"))
    with pytest.raises(ConversionError, match="unexpected in checkpoint"):
        convert_state_dict(fake_official_checkpoint("dasnet"), paddle_models.build_model("danet"))


def test_truncated_empty_and_pickled_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(fake_official_checkpoint("danet_r50"), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConversionError, match="truncated or corrupt"):
        load_torch_checkpoint(str(truncated))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ConversionError, match="empty"):
        load_torch_checkpoint(str(empty))
    with pytest.raises(ConversionError, match="no such checkpoint"):
        load_torch_checkpoint(str(tmp_path / "missing.pth"))
    pickled = tmp_path / "whole_model.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)), pickled)
    with pytest.raises(ConversionError, match="--trust-pickle"):
        load_torch_checkpoint(str(pickled))
    assert set(load_torch_checkpoint(str(pickled), trust_pickle=True)) == {"0.weight", "0.bias"}


def test_cli_converts_and_verifies(tmp_path):
    src = tmp_path / "danet.pth"
    torch.save({"state_dict": fake_official_checkpoint("danet_r50")}, src)
    dst = tmp_path / "out" / "danet.pdparams"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_weights.py"), "--model", "danet",
                          "--backbone", "resnet50", "--src", str(src), "--dst", str(dst), "--verify"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "verify: max relative output difference" in run.stdout
    diff = float(run.stdout.rsplit(" ", 1)[-1])
    assert diff < 1e-4
    assert len(paddle.load(str(dst))) == len(paddle_models.build_model("danet").state_dict())
    assert not any(p.name.startswith(".") for p in dst.parent.iterdir())  # no temp file left


def test_cli_torchvision_backbone_reports_what_was_not_loaded(tmp_path):
    from torch_ref.backbones import build_resnet

    src = tmp_path / "resnet50-19c8e357.pth"
    torch.save(build_resnet("resnet50", dilated=False).state_dict(), src)
    dst = tmp_path / "init.pdparams"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_weights.py"), "--model", "danet",
                          "--src", str(src), "--dst", str(dst)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "backbone checkpoint" in run.stdout and "not loaded" in run.stdout and "head." in run.stdout
    state = paddle.load(str(dst))
    assert all(k.startswith("pretrained.") for k in state) and "pretrained.fc.weight" in state


def test_cli_error_exit_code_and_message(tmp_path):
    src = tmp_path / "bad.pth"
    torch.save({"state_dict": fake_official_checkpoint("dasnet")}, src)
    dst = tmp_path / "x.pdparams"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_weights.py"), "--model", "danet",
                          "--src", str(src), "--dst", str(dst)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "unexpected in checkpoint" in run.stderr
    assert not dst.exists()
