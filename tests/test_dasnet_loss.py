"""dasnet_contrastive: both twins against the written-out formulas of the official codes and STANet."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import paddle_models
import torch_ref
from paddle_models.layers.resize import align_corners_weights, exact_float64_resize
from rsrepro.dasnet import V2_CLASS_WEIGHTS, contrastive_config

RNG = np.random.RandomState(0)
# Embeddings at 9x9 (unit vectors, as the model outputs) and 72x72 labels: 72 -> 9 makes soft labels.
PAIRS = [[RNG.randn(2, 6, 9, 9) for _ in range(2)] for _ in range(3)]
PAIRS = [[x / np.linalg.norm(x, axis=1, keepdims=True) for x in p] for p in PAIRS]
# 6x6 blocks: an align_corners resize by 8 never straddles the edge of an 8-aligned block (the source
# position 8i + 7i/(h-1) always falls inside one), so 8x8 blocks would give hard labels.
LABELS = np.kron((RNG.rand(2, 12, 12) < 0.3).astype("int64"), np.ones((1, 6, 6), dtype="int64"))


def soft_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """Official rz_label: bilinear, align_corners=True, not re-binarised."""
    rows = align_corners_weights(size, labels.shape[1])
    cols = align_corners_weights(size, labels.shape[2])
    return np.einsum("ih,bhw,jw->bij", rows, labels.astype(np.float64), cols)


def naive_loss(pairs, labels, distance="l2", margins=(0.3, 2.2), weights=(1.0, 1.0), lambdas=(1, 1, 1),
               balanced=False, eps=1e-6) -> float:
    total = 0.0
    for lam, (x0, x1) in zip(lambdas, pairs):
        y = soft_labels(labels, x0.shape[-1])
        if distance == "l2":  # official: sqrt(sum((|x0 - x1| + eps)^2))
            d = np.sqrt(((np.abs(x0 - x1) + eps) ** 2).sum(1))
        else:  # 1 - cosine similarity, quotient form
            d = 1 - (x0 * x1).sum(1) / np.sqrt((x0 ** 2).sum(1) * (x1 ** 2).sum(1))
        pos = (1 - y) * np.maximum(d - margins[0], 0) ** 2
        neg = y * np.maximum(margins[1] - d, 0) ** 2
        if balanced:
            term = pos.sum() / ((1 - y).sum() + 1e-4) + neg.sum() / (y.sum() + 1e-4)
        else:
            w_u, w_c = weights if weights != "batch" else (1 / (1 - y.mean()), 1 / y.mean())
            term = (w_u * pos + w_c * neg).mean()
        total += lam * term
    return total


def both_losses(kwargs, pairs=PAIRS, labels=LABELS, grad=False):
    t_leaves = [[torch.tensor(x, requires_grad=grad) for x in p] for p in pairs]
    t = torch_ref.build_loss("dasnet_contrastive", **kwargs)(t_leaves, torch.from_numpy(labels))
    paddle.set_default_dtype("float64")
    try:
        p_leaves = [[paddle.to_tensor(x, stop_gradient=not grad) for x in p] for p in pairs]
        with exact_float64_resize():
            p = paddle_models.build_loss("dasnet_contrastive", **kwargs)(p_leaves, paddle.to_tensor(labels))
    finally:
        paddle.set_default_dtype("float32")
    return t, p, t_leaves, p_leaves


CASES = {
    "official": ({}, {}),
    "weighted": ({"variant": "weighted"}, {"weights": V2_CLASS_WEIGHTS}),
    "cosine": ({"variant": "cosine"}, {"distance": "cos", "margins": (0.1, 0.8), "weights": V2_CLASS_WEIGHTS}),
    "batch": ({"class_weights": "batch"}, {"weights": "batch"}),
    "fixed": ({"class_weights": [0.5, 3.0], "margins": [0.2, 1.5]}, {"weights": (0.5, 3.0), "margins": (0.2, 1.5)}),
    "lambdas": ({"variant": "weighted", "lambdas": [0.5, 0.0, 2.0]},
                {"weights": V2_CLASS_WEIGHTS, "lambdas": (0.5, 0.0, 2.0)}),
    "balanced": ({"balanced": True, "margins": (0.0, 2.0)}, {"balanced": True, "margins": (0.0, 2.0)}),
    "eps": ({"eps": 0.0}, {"eps": 0.0}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_twins_equal_the_written_out_formula(name):
    kwargs, naive_kwargs = CASES[name]
    expected = naive_loss(PAIRS, LABELS, **naive_kwargs)
    t, p, _, _ = both_losses(kwargs)
    assert t.item() == pytest.approx(expected, rel=1e-12)
    assert float(p) == pytest.approx(expected, rel=1e-12)


def test_labels_are_resized_soft_and_full_size_labels_used_as_they_are():
    soft = soft_labels(LABELS, 9)
    assert ((soft > 0) & (soft < 1)).any()  # soft at block edges, as the official rz_label
    full = [[np.repeat(np.repeat(x, 8, axis=2), 8, axis=3) for x in p] for p in PAIRS]  # 72x72 outputs
    t, p, _, _ = both_losses({}, pairs=full)
    assert t.item() == pytest.approx(naive_loss(full, LABELS), rel=1e-12)
    assert float(p) == pytest.approx(t.item(), rel=1e-12)


def test_stanet_bcl_formula_with_its_label_convention():
    # STANet models/loss.py BCL: label 1 = no change, -1 = change; margin 2; sums / (count + 1e-4).
    full = [[np.repeat(np.repeat(x, 8, axis=2), 8, axis=3) for x in p] for p in PAIRS]  # 72x72, label size
    x0, x1 = full[2]
    d = np.sqrt(((x0 - x1) ** 2).sum(1))  # STANet: F.pairwise_distance; ours with eps=0
    stanet_label = np.where(LABELS == 1, -1.0, 1.0)
    pos_num = (stanet_label == 1).sum() + 1e-4
    neg_num = (stanet_label == -1).sum() + 1e-4
    bcl = (((1 + stanet_label) / 2 * d ** 2).sum() / pos_num
           + ((1 - stanet_label) / 2 * np.maximum(2.0 - d, 0) ** 2).sum() / neg_num)
    kwargs = {"balanced": True, "margins": (0.0, 2.0), "eps": 0.0, "lambdas": (0.0, 0.0, 1.0)}
    t, p, _, _ = both_losses(kwargs, pairs=full)
    assert t.item() == pytest.approx(bcl, rel=1e-12)
    assert float(p) == pytest.approx(bcl, rel=1e-12)


def test_zero_lambda_terms_are_not_computed_and_get_no_gradient():
    t, p, t_leaves, p_leaves = both_losses({"lambdas": (0.0, 0.0, 1.0)}, grad=True)
    t.backward()
    p.backward()
    assert all(x.grad is None for pair in t_leaves[:2] for x in pair)
    assert all(x.grad is None for pair in p_leaves[:2] for x in pair)
    for tx, px in zip(t_leaves[2], p_leaves[2]):
        np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    loss = torch_ref.build_loss("dasnet_contrastive", lambdas=(0.0, 0.0, 1.0))
    terms = loss.terms([[torch.from_numpy(x) for x in q] for q in PAIRS], torch.from_numpy(LABELS))
    assert list(terms) == ["saca"]


def test_terms_sum_to_the_loss_and_gradients_agree():
    t, p, t_leaves, p_leaves = both_losses({"variant": "cosine", "lambdas": (0.3, 0.7, 1.0)}, grad=True)
    t.backward()
    p.backward()
    for tp, pp in zip(t_leaves, p_leaves):
        for tx, px in zip(tp, pp):
            np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    loss = paddle_models.build_loss("dasnet_contrastive", variant="cosine", lambdas=(0.3, 0.7, 1.0))
    paddle.set_default_dtype("float64")
    try:
        with exact_float64_resize():
            terms = loss.terms([[paddle.to_tensor(x) for x in q] for q in PAIRS], paddle.to_tensor(LABELS))
    finally:
        paddle.set_default_dtype("float32")
    assert list(terms) == ["sa", "ca", "saca"]
    assert float(sum(terms.values())) == pytest.approx(t.item(), rel=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"variant": "l1"}, "variant must be one of"),
    ({"margins": (2.2, 0.3)}, "0 <= m1 < m2"),
    ({"balanced": True, "class_weights": (1, 2)}, "weight twice"),
    ({"class_weights": "frequency"}, "or 'batch'"),
    ({"lambdas": (0, 0, 0)}, "at least one > 0"),
    ({"lambdas": (1, 1)}, "sequence of 3"),
])
def test_bad_arguments_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        contrastive_config(**kwargs)
    with pytest.raises(ValueError, match=message):
        paddle_models.build_loss("dasnet_contrastive", **kwargs)


def test_raw_0_255_labels_and_wrong_outputs_are_refused():
    loss = torch_ref.build_loss("dasnet_contrastive")
    outputs = [[torch.from_numpy(x) for x in p] for p in PAIRS]
    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):
        loss(outputs, torch.from_numpy(LABELS * 255))
    with pytest.raises(ValueError, match="expected the model outputs"):
        loss(outputs[:2], torch.from_numpy(LABELS))
    paddle_loss = paddle_models.build_loss("dasnet_contrastive")
    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):
        paddle_loss([[paddle.to_tensor(x) for x in p] for p in PAIRS], paddle.to_tensor(LABELS * 255))
