"""Float64-accumulated reductions of the losses (``paddle_models/losses/reduction.py``) and the Paddle
kernel behaviour they avoid."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

from paddle_models.losses import reduction as paddle_reduction
from torch_ref.losses import reduction as torch_reduction

# 4 x 2 x 256 x 256: the LSNet / DASNet loss input at the paper's 256 px pairs, batch 4
SHAPE = (4, 2, 256, 256)


def _rel(value, truth) -> float:
    return float(np.abs(np.asarray(value, np.float64) - truth).max() / np.abs(truth).max())


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    return np.random.RandomState(0).rand(*SHAPE).astype("float32")


def test_paddle_float32_mean_drifts_where_torch_does_not(values):
    """Why the losses need the helpers: Paddle's CPU float32 mean and sum over some axes are sequential."""
    truth = values.astype(np.float64)
    x = paddle.to_tensor(values)
    assert _rel(float(x.mean()), truth.mean()) > 2e-7
    assert _rel(x.sum(axis=[0, 2, 3]).numpy(), truth.sum(axis=(0, 2, 3))) > 2e-7
    assert _rel(float(torch.from_numpy(values).mean()), truth.mean()) < 1e-7


@pytest.mark.parametrize("axis", [None, [0, 2, 3], [0, 2]])
def test_accurate_sum_is_float64_rounded_once(values, axis):
    truth = values.astype(np.float64).sum(axis=None if axis is None else tuple(axis))
    got = paddle_reduction.accurate_sum(paddle.to_tensor(values), axis)
    assert got.dtype == paddle.float32
    assert _rel(got.numpy(), truth) <= 2 ** -24  # one float32 rounding of the exact sum
    twin = torch_reduction.accurate_sum(torch.from_numpy(values), axis)
    assert twin.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), twin.numpy())


def test_accurate_mean_and_its_gradient(values):
    x = paddle.to_tensor(values, stop_gradient=False)
    mean = paddle_reduction.accurate_mean(x)
    assert _rel(float(mean), values.astype(np.float64).mean()) <= 2 ** -24
    mean.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(SHAPE, 1.0 / values.size, np.float32))
    t = torch.from_numpy(values).requires_grad_()
    torch_reduction.accurate_mean(t).backward()
    np.testing.assert_array_equal(t.grad.numpy(), x.grad.numpy())


def test_float64_input_is_unchanged():
    x = np.random.RandomState(1).randn(3, 5)
    got = paddle_reduction.accurate_sum(paddle.to_tensor(x), [1])
    assert got.dtype == paddle.float64
    np.testing.assert_array_equal(got.numpy(), paddle.to_tensor(x).sum(axis=1).numpy())
