"""LSNet: official key layout, parameter counts, torch/Paddle forward parity, hybrid loss parity."""

from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
import torch

import paddle_models
import torch_ref
from alignment.convert import convert_state_dict
from paddle_models.layers.resize import exact_float64_resize
from rsrepro.lsnet import VARIANTS

OFFICIAL_KEYS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "alignment", "reference", "official_keys.json")
# Official README "Params" (thop 0.0.31: PReLU slopes not counted).
README_PARAMS = {"diffFPN": 1_207_706, "thin_diffFPN": 1_167_922, "denseFPN": 1_096_694}


def official(variant: str):
    with open(OFFICIAL_KEYS) as f:
        data = json.load(f)
    return data[f"lsnet_{variant}"], data["param_counts"][f"lsnet_{variant}"]


def randomize_reference(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics / affine and PReLU slopes (the init leaves them at 0/1/0.25)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.2)
                m.weight.copy_(1 + 0.3 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
            elif isinstance(m, torch.nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5)
    return model


def twins(variant: str, dtype: str = "float32"):
    torch.manual_seed(0)
    ref = randomize_reference(torch_ref.build_model("lsnet", variant=variant)).eval()
    previous = paddle.get_default_dtype()
    if dtype == "float64":
        ref = ref.double()
        paddle.set_default_dtype("float64")
    try:
        model = paddle_models.build_model("lsnet", variant=variant)
    finally:
        paddle.set_default_dtype(previous)
    model.set_state_dict(convert_state_dict(ref.state_dict(), model))
    model.eval()
    return ref, model


def pair(dtype: str, batch: int = 2, size: int = 64, seed: int = 0):
    rng = np.random.RandomState(seed)
    return [(rng.rand(batch, 3, size, size) * 255).astype(dtype) for _ in range(2)]


def relative_diffs(ref_outputs, outputs):
    return [float(np.abs(r.detach().numpy() - o.numpy()).max() / np.abs(r.detach().numpy()).max())
            for r, o in zip(ref_outputs, outputs)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_keys_shapes_and_counts_equal_official(variant):
    keys, count = official(variant)
    model = torch_ref.build_model("lsnet", variant=variant)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == keys
    assert sum(p.numel() for p in model.parameters()) == count
    prelu = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.PReLU) for p in m.parameters())
    assert count - prelu == README_PARAMS[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_paddle_names_mirror_torch(variant):
    ref = torch_ref.build_model("lsnet", variant=variant)
    model = paddle_models.build_model("lsnet", variant=variant)
    converted = convert_state_dict(ref.state_dict(), model)  # strict: raises on any mismatch
    assert set(converted) == set(model.state_dict())
    trainable = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
    assert trainable == sum(p.numel() for p in ref.parameters())


def test_paddle_init_follows_official():
    paddle.seed(0)
    model = paddle_models.build_model("lsnet", variant="thin_diffFPN")
    conv = model.backbone.level3[1].conv1x1[0]  # 1x1, 256 -> 128: fan_out 128
    assert abs(float(conv.weight.std()) - np.sqrt(2.0 / 128)) < 0.1 * np.sqrt(2.0 / 128)
    bias_bound = 1 / np.sqrt(256)
    assert 0 < float(conv.bias.abs().max()) <= bias_bound
    fc = model.backbone.level3[1].f_glo.fc[0]  # Linear 256 -> 8 (Paddle weight [in, out])
    assert float(fc.weight.abs().max()) <= 1 / np.sqrt(256) and float(fc.weight.std()) > 0.3 / np.sqrt(256)
    bn = model.backbone.level3[1].bn
    assert float(bn.weight.min()) == 1.0 and float(bn.bias.abs().max()) == 0.0
    assert bn._epsilon == pytest.approx(0.01)
    assert float(model.backbone.level3[1].activate.weight.mean()) == pytest.approx(0.25)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_parity_float32(variant):
    ref, model = twins(variant)
    t0, t1 = pair("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(t0), torch.from_numpy(t1))
    got = model(paddle.to_tensor(t0), paddle.to_tensor(t1))
    assert len(got) == len(expected) == 5
    assert tuple(got[-1].shape) == (2, 2, 64, 64)
    diffs = relative_diffs(expected, got)
    assert max(diffs) <= 1e-5, diffs


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_parity_float64(variant):
    """Same semantics to ~1e-15. Paddle's batch_norm kernel takes epsilon as a float32 attribute
    (0.01 -> 0.009999999776), an O(1e-9) effect in float64 (see the next test); the reference uses
    that rounded epsilon here so that any other difference would show."""
    ref, model = twins(variant, "float64")
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = float(np.float32(m.eps))
    t0, t1 = pair("float64")
    with torch.no_grad():
        expected = ref(torch.from_numpy(t0), torch.from_numpy(t1))
    with exact_float64_resize():
        got = model(paddle.to_tensor(t0), paddle.to_tensor(t1))
    diffs = relative_diffs(expected, got)
    assert max(diffs) <= 1e-12, diffs


def test_paddle_batchnorm_epsilon_is_float32():
    """The one known float64 difference: if Paddle ever keeps epsilon in float64 this fails, and
    the epsilon rounding in test_forward_parity_float64 can go."""
    rng = np.random.RandomState(0)
    x = rng.randn(2, 4, 3, 3) * 0.05
    mean, var = rng.randn(4) * 0.01, rng.rand(4) * 0.002 + 0.0005
    layer = paddle.nn.BatchNorm2D(4, momentum=0.9, epsilon=0.01)
    layer.eval()
    got = paddle.nn.functional.batch_norm(
        paddle.to_tensor(x), paddle.to_tensor(mean), paddle.to_tensor(var), paddle.ones([4], "float64"),
        paddle.zeros([4], "float64"), training=False, epsilon=layer._epsilon).numpy()

    def reference(eps):
        return (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)

    scale = np.abs(reference(0.01)).max()
    assert np.abs(got - reference(float(np.float32(0.01)))).max() / scale < 1e-14
    assert np.abs(got - reference(0.01)).max() / scale > 1e-10


def test_train_mode_parity_and_joint_batchnorm():
    """Train-mode outputs (batch statistics) agree, and the backbone runs ONCE on the 2B batch."""
    ref, model = twins("diffFPN")
    ref.train()
    model.train()
    seen = []
    ref.backbone.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    t0, t1 = pair("float32", batch=1, size=32)
    expected = ref(torch.from_numpy(t0), torch.from_numpy(t1))
    got = model(paddle.to_tensor(t0), paddle.to_tensor(t1))
    assert seen == [(2, 3, 32, 32)]
    assert max(relative_diffs(expected, got)) <= 1e-5


@pytest.mark.parametrize("package", [torch_ref, paddle_models], ids=["torch", "paddle"])
def test_bad_model_arguments(package):
    with pytest.raises(ValueError, match="unknown variant 'fpn'"):
        package.build_model("lsnet", variant="fpn")
    model = package.build_model("lsnet", variant="thin_diffFPN")
    tensor = torch.zeros if package is torch_ref else paddle.zeros
    with pytest.raises(ValueError, match="same shape"):
        model(tensor([1, 3, 32, 32]), tensor([1, 3, 32, 40]))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(tensor([1, 3, 36, 36]), tensor([1, 3, 36, 36]))


# --------------------------------------------------------------------------------------- loss

def loss_inputs(seed: int = 0):
    rng = np.random.RandomState(seed)
    logits = (rng.randn(2, 2, 12, 20) * 3).astype("float32")
    labels = (rng.rand(2, 12, 20) < 0.3).astype("int64")
    labels[:, :, :3] = 0  # empty changed-class columns: where per-column and standard Dice differ most
    return logits, labels


def numpy_hybrid(logits, labels, dims):
    z = logits.astype("float64")
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    one_hot = np.stack([labels == c for c in range(z.shape[1])], 1).astype("float64")
    ce = -np.log(np.take_along_axis(p, labels[:, None], 1)).mean()
    dice = 1 - (2 * (p * one_hot).sum(dims) / ((p + one_hot).sum(dims) + 1e-7)).mean()
    return ce + dice


@pytest.mark.parametrize("mode,dims", [("official", (0, 2)), ("standard", (0, 2, 3))])
def test_loss_matches_definition_and_paddle(mode, dims):
    logits, labels = loss_inputs()
    expected = numpy_hybrid(logits, labels, dims)
    ref_loss = torch_ref.build_loss("lsnet_hybrid", dice=mode)
    loss = paddle_models.build_loss("lsnet_hybrid", dice=mode)

    ref_logits = torch.tensor(logits, requires_grad=True)
    ref_value = ref_loss((ref_logits * 0, ref_logits), torch.from_numpy(labels))  # uses the last output
    ref_value.backward()
    logits_p = paddle.to_tensor(logits, stop_gradient=False)
    value = loss((logits_p * 0, logits_p), paddle.to_tensor(labels))
    value.backward()

    assert abs(float(ref_value) - expected) <= 1e-6 * expected
    assert abs(float(value) - float(ref_value)) <= 1e-6 * abs(float(ref_value))
    grad_ref, grad = ref_logits.grad.numpy(), logits_p.grad.numpy()
    assert np.abs(grad - grad_ref).max() <= 1e-6 * np.abs(grad_ref).max()


def test_official_dice_differs_from_standard():
    logits, labels = loss_inputs()
    values = [float(torch_ref.build_loss("lsnet_hybrid", dice=mode)(torch.tensor(logits),
                                                                    torch.from_numpy(labels)))
              for mode in ("official", "standard")]
    assert abs(values[0] - values[1]) > 1e-3


@pytest.mark.parametrize("package", [torch_ref, paddle_models], ids=["torch", "paddle"])
def test_loss_rejects_bad_labels(package):
    loss = package.build_loss("lsnet_hybrid")
    tensor = torch.tensor if package is torch_ref else paddle.to_tensor
    logits = tensor(np.zeros((1, 2, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\].*255"):
        loss(logits, tensor(np.full((1, 4, 4), 255, "int64")))
    with pytest.raises(ValueError, match=r"labels must be \(B, H, W\)"):
        loss(logits, tensor(np.zeros((1, 1, 4, 4), "int64")))
    with pytest.raises(ValueError, match="dice must be one of"):
        package.build_loss("lsnet_hybrid", dice="soft")


def test_se_global_pool_rounds_like_torch():
    """Paddle's pool2d kernel sums a global pool sequentially in float32 (~6e-6 relative at 256x256, measured
    by benchmarks/lsnet_rounding.py); the SE gates' GlobalAvgPool2D (two means) must stay near torch's ~1e-7,
    and equal the plain pool in float64."""
    from paddle_models.layers.context_guided import GlobalAvgPool2D

    x = (np.abs(np.random.RandomState(0).randn(2, 8, 256, 256)) * 10).astype("float32")
    ref = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    out = GlobalAvgPool2D()(paddle.to_tensor(x)).numpy()
    assert np.abs(out - ref).max() / np.abs(ref).max() < 2e-6
    exact = GlobalAvgPool2D()(paddle.to_tensor(x.astype("float64"))).numpy()
    np.testing.assert_allclose(exact, ref, rtol=1e-13)
