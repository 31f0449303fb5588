"""DASNet / DASNet-V2 models: official keys and counts, siamese semantics, twins' parity, change score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest
import torch
import torch.nn.functional as F

import paddle_models
import torch_ref
from alignment.convert import convert_state_dict
from paddle_models import dasnet as paddle_dasnet
from paddle_models.layers.resize import exact_float64_resize
from rsrepro.dasnet import ablation_dropped_keys
from torch_ref import dasnet as torch_dasnet

OFFICIAL = json.loads((Path(__file__).resolve().parents[1] / "alignment" / "reference" / "official_keys.json")
                      .read_text())


@pytest.fixture(scope="module")
def torch_v2():
    torch.manual_seed(0)
    return torch_ref.build_model("dasnet_v2")


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and attention gammas (a fresh model has BN = identity, gamma = 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.05 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.8 + 0.4 * torch.rand(m.num_features, generator=g))
                m.weight.copy_(0.8 + 0.4 * torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.05 * torch.randn(m.num_features, generator=g))
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
    return model


@pytest.mark.parametrize("name", ["dasnet", "dasnet_v2"])
def test_torch_keys_shapes_and_counts_equal_official(name, torch_v2):
    model = torch_v2 if name == "dasnet_v2" else torch_ref.build_model(name)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert sorted(ours) == sorted(OFFICIAL[name])
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL["param_counts"][name]
    if name == "dasnet_v2":
        assert sum(p.numel() for p in model.decoder.parameters()) == 2_688_224


def test_paddle_mirrors_torch_tree(torch_v2):
    paddle_model = paddle_models.build_model("dasnet_v2")
    converted = convert_state_dict(torch_v2.state_dict(), paddle_model)  # raises on any mismatch
    assert set(converted) == set(paddle_model.state_dict())
    trainable = sum(int(np.prod(p.shape)) for p in paddle_model.parameters() if not p.stop_gradient)
    assert trainable == OFFICIAL["param_counts"]["dasnet_v2"]


def test_ablation_drops_only_the_attention_keys(torch_v2):
    ablated = torch_ref.build_model("dasnet_v2", use_pam=False, use_cam=False)
    full = torch_v2.state_dict()
    dropped = ablation_dropped_keys(full, use_pam=False, use_cam=False)
    assert sorted(dropped) == sorted(k for k in full if k.startswith(("CNN.head.sa.", "CNN.head.sc.")))
    assert len(dropped) == 8  # PAM: 3 convs x (weight, bias) + gamma; CAM: gamma
    ablated.load_state_dict({k: v for k, v in full.items() if k not in dropped}, strict=True)
    assert isinstance(ablated.CNN.head.sa, torch.nn.Identity) and isinstance(ablated.CNN.head.sc, torch.nn.Identity)
    assert ablation_dropped_keys(full, use_pam=True, use_cam=False) == ["CNN.head.sc.gamma"]


def test_v2_outputs_are_unit_embeddings_at_input_size_and_decoded_in_official_order(torch_v2):
    model = torch_v2.eval()
    rng = np.random.RandomState(0)
    t0, t1 = (torch.from_numpy(rng.randn(2, 3, 64, 64).astype("float32") * 50) for _ in range(2))
    seen = []
    handle = model.decoder.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    with torch.no_grad():
        outputs = model(t0, t1)
        e0, e1 = model.embed(t0), model.embed(t1)
    handle.remove()
    assert isinstance(outputs, tuple) and len(outputs) == 3
    for pair in outputs:
        assert isinstance(pair, list) and [tuple(x.shape) for x in pair] == [(2, 32, 64, 64)] * 2
        for x in pair:
            np.testing.assert_allclose(x.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # sa_t0, sa_t1, ca_t0, ca_t1, saca_t0, saca_t1: the order sets BN's running statistics in train mode.
    expected = [e0[0], e1[0], e0[1], e1[1], e0[2], e1[2]]
    assert len(seen) == 6
    for got, want in zip(seen, expected):
        torch.testing.assert_close(got, want)


def test_dasnet_embeddings_at_one_eighth_and_time_separate_batch_norm():
    torch.manual_seed(0)
    model = torch_ref.build_model("dasnet").train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout2d):
            m.p = 0.0
    rng = np.random.RandomState(1)
    t0, t1, t1b = (torch.from_numpy(rng.randn(2, 3, 64, 64).astype("float32")) for _ in range(3))
    with torch.no_grad():
        a = model(t0, t1)
        b = model(t0, t1b)
    assert [tuple(x.shape) for x in a[2]] == [(2, 512, 8, 8)] * 2
    # Train-mode BN statistics are per time (two CNN calls): t0's embeddings ignore what t1 is.
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa[0], pb[0], rtol=0, atol=0)
        assert not torch.allclose(pa[1], pb[1])


def test_forward_parity_float64():
    torch.manual_seed(0)
    ref = randomize_bn(torch_ref.build_model("dasnet")).double().eval()
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = float(np.float32(m.eps))  # Paddle holds BN epsilon as float32
    paddle.set_default_dtype("float64")
    try:
        model = paddle_models.build_model("dasnet")
    finally:
        paddle.set_default_dtype("float32")
    model.set_state_dict(convert_state_dict(ref.state_dict(), model))
    model.eval()
    rng = np.random.RandomState(2)
    t0, t1 = rng.randn(1, 3, 48, 48) * 50, rng.randn(1, 3, 48, 48) * 50
    with torch.no_grad():
        expected = ref(torch.from_numpy(t0), torch.from_numpy(t1))
    got = model(paddle.to_tensor(t0), paddle.to_tensor(t1))
    for pe, pg in zip(expected, got):
        for e, g in zip(pe, pg):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=0, atol=1e-10)


def test_change_distance_is_official_pairwise_distance_resized_any_batch():
    rng = np.random.RandomState(3)
    pairs = [[rng.randn(3, 16, 8, 8) for _ in range(2)] for _ in range(3)]
    torch_pairs = [[torch.from_numpy(x) for x in p] for p in pairs]
    x0, x1 = torch_pairs[2]
    flat0, flat1 = (x.permute(0, 2, 3, 1).reshape(-1, 16) for x in (x0, x1))
    official = F.pairwise_distance(flat0, flat1, p=2).reshape(3, 1, 8, 8)  # as the official validation
    official = F.interpolate(official, size=(32, 32), mode="bilinear", align_corners=True)[:, 0]
    ours = torch_dasnet.change_distance(torch_pairs, (32, 32))
    torch.testing.assert_close(ours, official, rtol=1e-12, atol=1e-12)
    with exact_float64_resize():  # Paddle's float64 bilinear kernel uses float32 coordinates
        paddle_ours = paddle_dasnet.change_distance([[paddle.to_tensor(x) for x in p] for p in pairs], (32, 32))
    np.testing.assert_allclose(paddle_ours.numpy(), official.numpy(), rtol=1e-12, atol=0)
    same_size = torch_dasnet.change_distance(torch_pairs, (8, 8), eps=0.0)
    np.testing.assert_allclose(same_size.numpy(), np.sqrt(((pairs[2][0] - pairs[2][1]) ** 2).sum(1)), rtol=1e-12)


def test_shape_mismatch_between_times_is_an_error():
    model = torch_ref.build_model("dasnet").eval()
    with pytest.raises(ValueError, match="t0 and t1 must have the same shape"):
        model(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 40))
