"""FactSeg on both sides: official keys, blocks, forward parity, outputs, encoder init, joint loss + SOM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
import torch

import paddle_models
import torch_ref
from alignment.convert import convert_state_dict
from paddle_models.losses import factseg_joint as pj
from rsrepro.factseg import decoder_plan, torchvision_to_factseg
from torch_ref.losses import factseg_joint as tj
from torch_ref.losses.factseg_joint import official_joint_loss

OFFICIAL = json.loads((Path(__file__).resolve().parents[1] / "alignment" / "reference" / "official_keys.json")
                      .read_text())


@pytest.fixture(scope="module")
def pair():
    """Torch reference with trained-like statistics and the Paddle model with its converted weights."""
    from alignment.cases import get_case
    from alignment.harness import build_pair

    return build_pair(get_case("factseg_r50"), "float32", seed=0)


def test_torch_keys_shapes_and_count_equal_official():
    model = torch_ref.build_model("factseg", num_classes=16)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == OFFICIAL["factseg"]  # same keys, shapes AND registration order
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL["param_counts"]["factseg"] == 33_446_609


def test_paddle_mirrors_torch_tree():
    torch_model = torch_ref.build_model("factseg")
    paddle_model = paddle_models.build_model("factseg")
    converted = convert_state_dict(torch_model.state_dict(), paddle_model)  # raises on any mismatch
    assert set(converted) == set(paddle_model.state_dict())
    trainable = sum(int(np.prod(p.shape)) for p in paddle_model.parameters() if not p.stop_gradient)
    assert trainable == 33_446_609


def test_decoder_plan_and_fpn_init():
    assert [decoder_plan(s) for s in (4, 8, 16, 32)] == [(1, False), (1, True), (2, True), (3, True)]
    from paddle_models.layers.factseg_blocks import FPN as PaddleFPN
    from torch_ref.layers.factseg_blocks import FPN as TorchFPN

    for lib, fpn in ((torch_ref, TorchFPN((256, 512, 1024, 2048), 256)),
                     (paddle_models, PaddleFPN((256, 512, 1024, 2048), 256))):
        for idx, fan_in in ((1, 256), (4, 2048)):
            for kind, k in (("inner", 1), ("layer", 9)):
                conv = getattr(fpn, f"fpn_{kind}{idx}")
                weight = conv.weight.detach().numpy() if lib is torch_ref else conv.weight.numpy()
                bound = np.sqrt(3.0 / ((fan_in if kind == "inner" else 256) * k))
                assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound
                bias = conv.bias.detach().numpy() if lib is torch_ref else conv.bias.numpy()
                assert not bias.any()


def test_nearest_topdown_matches_torch():
    x = np.random.RandomState(0).randn(2, 3, 5, 7).astype("float32")
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=2, mode="nearest").numpy()
    out = paddle.nn.functional.interpolate(paddle.to_tensor(x), scale_factor=2, mode="nearest").numpy()
    assert np.array_equal(ref, out) and np.array_equal(ref, x.repeat(2, axis=2).repeat(2, axis=3))


def test_forward_parity_and_fused_probability(pair):
    torch_model, paddle_model = pair
    x = np.random.RandomState(1).randn(2, 3, 64, 96).astype("float32")
    with torch.no_grad():
        fg, bi, prob = torch_model(torch.from_numpy(x))
    with paddle.no_grad():
        pfg, pbi, pprob = paddle_model(paddle.to_tensor(x))
    for ref, out in ((fg, pfg), (bi, pbi), (prob, pprob)):
        ref, out = ref.numpy(), out.numpy()
        assert np.abs(ref - out).max() <= 1e-5 * np.abs(ref).max()
    # Fusion by hand: softmax with channel 0 x (1 - p_fg), channels 1.. x p_fg, renormalised.
    soft = torch.softmax(fg, 1).numpy().astype(np.float64)
    pfg_ = 1 / (1 + np.exp(-bi.numpy().astype(np.float64)))
    joint = np.concatenate([soft[:, :1] * (1 - pfg_), soft[:, 1:] * pfg_], axis=1)
    assert np.allclose(prob.numpy(), joint / joint.sum(1, keepdims=True), atol=1e-6)
    assert np.allclose(prob.numpy().sum(1), 1.0, atol=1e-5)


def test_eval_output_is_batch_safe(pair):
    """The official ``div_(Z)`` with Z of shape (B, H, W) breaks for B > 1; ours equals per-image runs."""
    torch_model, _ = pair
    x = torch.from_numpy(np.random.RandomState(2).randn(2, 3, 32, 32).astype("float32"))
    with torch.no_grad():
        both = torch_model(x)[2]
        single = torch.cat([torch_model(x[i:i + 1])[2] for i in range(2)])
    assert torch.allclose(both, single, atol=1e-6)


def test_output_modes_and_size_check():
    for lib, to_input in ((torch_ref, torch.from_numpy), (paddle_models, paddle.to_tensor)):
        model = lib.build_model("factseg")
        x = to_input(np.zeros((1, 3, 32, 64), "float32"))
        model.train()
        out = model(x)
        assert isinstance(out, tuple) and len(out) == 2 and list(out[0].shape) == [1, 16, 32, 64]
        assert list(out[1].shape) == [1, 1, 32, 64]
        model.eval()
        assert list(model(x).shape) == [1, 16, 32, 64]
        with pytest.raises(ValueError, match="multiples of 32"):
            model(to_input(np.zeros((1, 3, 48, 64), "float32")))
        with pytest.raises(ValueError, match="output must be one of"):
            lib.build_model("factseg", output="probs")


def test_torchvision_resnet50_initialises_the_encoder(tmp_path):
    """A torchvision-layout ResNet-50 file (fc included) loads into the encoder on both sides."""
    from torch_ref.backbones import build_resnet

    tv = build_resnet("resnet50", dilated=False).state_dict()  # torchvision keys, with fc.*
    mapped, dropped = torchvision_to_factseg(tv)
    assert dropped == ["fc.weight", "fc.bias"] and all(k.startswith("resencoder.resnet.") for k in mapped)
    torch_model = torch_ref.build_model("factseg")
    missing, unexpected = torch_model.load_state_dict(mapped, strict=False)
    assert not unexpected and all(not k.startswith("resencoder.") for k in missing)
    paddle_model = paddle_models.build_model("factseg")
    converted = convert_state_dict(mapped, paddle_model, strict=False)
    paddle_model.set_state_dict(converted)
    key = "resencoder.resnet.layer3.5.bn2._variance"
    assert np.array_equal(paddle_model.state_dict()[key].numpy(), tv["layer3.5.bn2.running_var"].numpy())
    assert len(converted) == sum(1 for k in mapped if not k.endswith("num_batches_tracked"))
    with pytest.raises(KeyError, match="not a torchvision ResNet"):
        torchvision_to_factseg({"head.weight": tv["conv1.weight"]})


def test_convert_weights_tool_accepts_torchvision_file(tmp_path):
    from tools.convert_weights import convert_checkpoint
    from torch_ref.backbones import build_resnet

    src = tmp_path / "resnet50-fake.pth"
    torch.save(build_resnet("resnet50", dilated=False).state_dict(), src)
    report = convert_checkpoint("factseg", {}, str(src), str(tmp_path / "init.pdparams"))
    assert report["kind"] == "backbone" and report["prefix"] == "resencoder.resnet."
    assert report["unused"] == ["fc.weight", "fc.bias"]


# ------------------------------------------------------------------------------------------ loss
def _logits(seed=0, shape=(2, 16, 24, 24), scale=3.0, ignore=0.15):
    rng = np.random.RandomState(seed)
    b, c, h, w = shape
    fg = (rng.randn(b, c, h, w) * scale).astype("float32")
    bi = (rng.randn(b, 1, h, w) * scale).astype("float32")
    labels = rng.randint(0, c, size=(b, h, w)).astype("int64")
    labels[rng.rand(b, h, w) < ignore] = 255
    return fg, bi, labels


def _torch_run(loss, fg, bi, labels):
    a, b = torch.tensor(fg, requires_grad=True), torch.tensor(bi, requires_grad=True)
    value = loss((a, b), torch.from_numpy(labels))
    value.backward()
    return value.item(), a.grad.numpy(), b.grad.numpy()


def _paddle_run(loss, fg, bi, labels):
    a, b = paddle.to_tensor(fg, stop_gradient=False), paddle.to_tensor(bi, stop_gradient=False)
    value = loss((a, b), paddle.to_tensor(labels))
    value.backward()
    return float(value), a.grad.numpy(), b.grad.numpy()


def _close(ref, out, rel=1e-6):
    assert abs(ref[0] - out[0]) <= rel * abs(ref[0])
    for r, o in zip(ref[1:], out[1:]):
        assert np.abs(r - o).max() <= rel * np.abs(r).max()


@pytest.mark.parametrize("ratio", [0.1, 0.2])
def test_all_modes_equal_official_loss_and_gradients(ratio):
    fg, bi, labels = _logits()
    a, b = torch.tensor(fg, requires_grad=True), torch.tensor(bi, requires_grad=True)
    official = official_joint_loss(a, b, torch.from_numpy(labels), ratio)
    official.backward()
    ref = (official.item(), a.grad.numpy(), b.grad.numpy())
    per_side = {}
    for mode in ("pylayer", "inplace", "concat"):
        t = _torch_run(torch_ref.build_loss("factseg_joint", ratio=ratio, mode=mode), fg, bi, labels)
        p = _paddle_run(paddle_models.build_loss("factseg_joint", ratio=ratio, mode=mode), fg, bi, labels)
        _close(ref, t)
        _close(ref, p)
        per_side.setdefault("torch", []).append(t)
        per_side.setdefault("paddle", []).append(p)
    for runs in per_side.values():  # modes are bit-identical within a framework
        for other in runs[1:]:
            assert other[0] == runs[0][0] and all(np.array_equal(x, y) for x, y in zip(other[1:], runs[0][1:]))
    assert not ref[1][np.broadcast_to((labels == 255)[:, None], fg.shape)].any()  # ignored pixels: no gradient


def test_log_space_stays_finite_where_official_overflows():
    fg, bi, labels = _logits(scale=40.0, ignore=0.0)
    official = official_joint_loss(torch.from_numpy(fg), torch.from_numpy(bi), torch.from_numpy(labels), 0.1)
    assert not torch.isfinite(official)  # log(0) = -inf, or 0/0 = NaN where every joint term underflows
    t = _torch_run(torch_ref.build_loss("factseg_joint", ratio=0.1), fg, bi, labels)
    p = _paddle_run(paddle_models.build_loss("factseg_joint", ratio=0.1), fg, bi, labels)
    assert np.isfinite(t[0]) and np.isfinite(t[1]).all()
    _close(t, p)


def test_som_selects_ties_by_index_and_value_matches_topk():
    losses = np.array([0.0, 3.0, 1.0, 3.0, 2.0, 3.0, 0.0, 3.0, 5.0], np.float32)
    for lib, to_t in ((tj, torch.from_numpy), (pj, paddle.to_tensor)):
        mask = np.asarray(lib.som_select(to_t(losses), 4))
        assert mask.tolist() == [False, True, False, True, False, True, False, False, True]
        for ratio, expected in ((0.5, (5 + 3 + 3 + 3) / 4), (1.0, 20.0 / 7), (0.05, 0.0)):
            assert float(lib.small_object_mining(to_t(losses), ratio)) == pytest.approx(expected, rel=1e-6)
    top = np.sort(losses)[::-1][:4]
    assert float(tj.small_object_mining(torch.from_numpy(losses), 0.5)) == pytest.approx(top.sum() / 4, rel=1e-6)


def test_tied_losses_give_identical_gradients_on_both_sides():
    rng = np.random.RandomState(3)
    fg = np.kron(rng.randn(1, 16, 3, 3) * 3, np.ones((1, 1, 8, 8))).astype("float32")
    bi = np.kron(rng.randn(1, 1, 3, 3) * 3, np.ones((1, 1, 8, 8))).astype("float32")
    labels = np.kron(rng.randint(0, 16, (1, 3, 3)), np.ones((1, 8, 8), np.int64))
    for ratio in (0.1, 0.2):
        t = _torch_run(torch_ref.build_loss("factseg_joint", ratio=ratio), fg, bi, labels)
        p = _paddle_run(paddle_models.build_loss("factseg_joint", ratio=ratio), fg, bi, labels)
        _close(t, p)
        # the selected pixels are the lowest flat indices among the tied ones
        selected = (np.abs(t[1]).sum(1) > 0).ravel()
        assert selected.sum() == int(ratio * selected.size)


def test_pylayer_clone_is_only_valid_for_a_full_overwrite():
    """The zero backward drops the gradient of kept entries: fine for FactSeg (all overwritten), wrong for a
    partial overwrite. Modern in-place assignment gets both right."""
    x = paddle.to_tensor(np.arange(1.0, 7.0, dtype="float32").reshape(2, 3), stop_gradient=False)

    def grad(clone_fn, rows):
        joint = clone_fn(x)
        for r in rows:
            joint[r:r + 1] = x[r:r + 1] * 2.0
        g, = paddle.grad((joint * joint).sum(), x)
        return g.numpy()

    full_pylayer, full_inplace = grad(pj.Clone.apply, [0, 1]), grad(lambda t: t.clone(), [0, 1])
    assert np.array_equal(full_pylayer, full_inplace) and np.allclose(full_inplace, 8 * x.numpy())
    partial_pylayer, partial_inplace = grad(pj.Clone.apply, [0]), grad(lambda t: t.clone(), [0])
    assert np.allclose(partial_inplace[1], 2 * x.numpy()[1]) and not partial_pylayer[1].any()


def test_inverse_weights_and_plain_mean():
    fg, bi, labels = _logits(seed=5)
    valid = labels[labels != 255]
    freq = np.bincount(valid, minlength=16) / valid.size
    weights = 1.0 / np.log(1.02 + freq)
    got = tj.inverse_class_weights(torch.from_numpy(labels), 16, torch.float32).numpy()
    assert np.allclose(got, weights, rtol=1e-6)
    assert np.allclose(pj.inverse_class_weights(paddle.to_tensor(labels), 16, paddle.float32).numpy(), got, rtol=1e-6)
    for kwargs in ({"inverse_weight": True}, {"som": False}, {"som": False, "inverse_weight": True}):
        t = _torch_run(torch_ref.build_loss("factseg_joint", **kwargs), fg, bi, labels)
        p = _paddle_run(paddle_models.build_loss("factseg_joint", **kwargs), fg, bi, labels)
        _close(t, p)
    # plain mean by hand (float64)
    log_p = tj.joint_log_probability(torch.from_numpy(fg).double(), torch.from_numpy(bi).double()).numpy()
    safe = np.where(labels == 255, 0, labels)
    nll = -np.take_along_axis(log_p, safe[:, None], 1)[:, 0]
    mask = labels != 255
    expected = (nll * mask * weights[safe]).sum() / (weights[safe] * mask).sum()
    assert _torch_run(torch_ref.build_loss("factseg_joint", som=False, inverse_weight=True), fg, bi,
                      labels)[0] == pytest.approx(expected, rel=1e-5)


def test_loss_input_errors_and_all_ignored():
    fg, bi, labels = _logits()
    for lib, run in ((torch_ref, _torch_run), (paddle_models, _paddle_run)):
        loss = lib.build_loss("factseg_joint")
        bad = labels.copy()
        bad[0, 0, 0] = 16
        with pytest.raises(ValueError, match="outside 0..15"):
            run(loss, fg, bi, bad)
        for som in (True, False):
            value, g_fg, _ = run(lib.build_loss("factseg_joint", som=som), fg, bi, np.full_like(labels, 255))
            assert value == 0.0 and not g_fg.any()
        with pytest.raises(ValueError, match="mode must be one of"):
            lib.build_loss("factseg_joint", mode="copy")


# ------------------------------------------------------------------------------- alignment steps
@pytest.mark.parametrize("module", ["check_forward", "check_loss"])
def test_alignment_steps_pass(tmp_path, module):
    """The FactSeg alignment steps that are cheap enough for CI meet their bars (exit 0); the mode
    comparison (alignment/check_factseg_modes.py) is covered by test_all_modes_equal_official_loss_and_gradients."""
    import importlib

    check = importlib.import_module(f"alignment.{module}")
    assert check.main(["--model", "factseg_r50", "--size", "small", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fpn_upsampling_by_size_is_bit_identical_to_scale_factor(dtype):
    """The FPN's x2 nearest upsampling is written with an explicit output size (paddle2onnx 2.1 cannot convert
    Paddle 3.3's float64 scale_factor attribute); it must equal ``scale_factor=2`` bit for bit, odd sizes too."""
    import paddle.nn.functional as F

    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (3, 5), (7, 2), (8, 13), (17, 31)]:
        x = paddle.to_tensor(rng.standard_normal((2, 4, h, w)).astype(dtype))
        by_size = F.interpolate(x, size=[2 * x.shape[2], 2 * x.shape[3]], mode="nearest")
        by_scale = F.interpolate(x, scale_factor=2, mode="nearest")
        assert np.array_equal(by_size.numpy(), by_scale.numpy())
        assert np.array_equal(by_size.numpy(), np.repeat(np.repeat(x.numpy(), 2, 2), 2, 3))
