"""Query-chunked position attention (``PAM_Module(query_chunk=n)``) equals the plain N x N form.

Outputs and gradients (input and every parameter) on both twins, float32 and float64, for chunk
sizes that divide N, do not divide it, and exceed it; the chunks really bound the energy matrix;
state-dict keys are unchanged; the ``pam_query_chunk`` build option and ``set_pam_query_chunk``.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import paddle
import pytest
import torch

import paddle_models
import torch_ref
from paddle_models.layers.attention import PAM_Module as PaddlePAM
from paddle_models.layers.attention import set_pam_query_chunk as paddle_set_chunk
from torch_ref.layers.attention import PAM_Module as TorchPAM
from torch_ref.layers.attention import set_pam_query_chunk as torch_set_chunk

C, H, W = 16, 5, 7  # N = 35 positions
CHUNKS = [1, 5, 7, 8, 34, 35, 100]  # 5, 7, 35 divide N; 1 is one row at a time; 100 > N
TOL = {"float32": 1e-6, "float64": 1e-12}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@contextmanager
def paddle_dtype(dtype: str):
    old = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        yield
    finally:
        paddle.set_default_dtype(old)


def torch_run(module: torch.nn.Module, x: np.ndarray, upstream: np.ndarray) -> dict:
    module.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt)
    (out * torch.tensor(upstream)).sum().backward()
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    return {"out": out.detach().numpy(), "dx": xt.grad.numpy(), **grads}


def paddle_run(module: paddle.nn.Layer, x: np.ndarray, upstream: np.ndarray) -> dict:
    module.clear_gradients()
    xp = paddle.to_tensor(x, stop_gradient=False)
    out = module(xp)
    (out * paddle.to_tensor(upstream)).sum().backward()
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    return {"out": out.numpy(), "dx": xp.grad.numpy(), **grads}


def make_torch(dtype: str) -> TorchPAM:
    module = TorchPAM(C).to(getattr(torch, dtype))
    with torch.no_grad():
        module.gamma.fill_(0.7)  # gamma = 0 (its init) would hide the attention entirely
    return module


def make_paddle(dtype: str) -> PaddlePAM:
    with paddle_dtype(dtype):
        module = PaddlePAM(C)
    module.gamma.set_value(paddle.full([1], 0.7, dtype=dtype))
    return module


def data(dtype: str):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, C, H, W)) * 2).astype(dtype)  # larger logits: a peaked softmax
    upstream = rng.standard_normal((2, C, H, W)).astype(dtype)
    return x, upstream


def float64_twin(side: str, module):
    """The same weights in float64 (the rounding-free reference of a float32 module)."""
    if side == "torch":
        twin = make_torch("float64")
        twin.load_state_dict({k: v.double() for k, v in module.state_dict().items()})
        return twin
    twin = make_paddle("float64")
    twin.set_state_dict({k: paddle.to_tensor(v.numpy().astype("float64")) for k, v in module.state_dict().items()})
    return twin


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("side", ["torch", "paddle"])
def test_chunked_equals_plain_outputs_and_gradients(side, dtype):
    torch.manual_seed(0)
    paddle.seed(0)
    x, upstream = data(dtype)
    module = make_torch(dtype) if side == "torch" else make_paddle(dtype)
    run = torch_run if side == "torch" else paddle_run
    plain = run(module, x, upstream)
    assert set(plain) >= {"out", "dx", "gamma", "query_conv.weight", "key_conv.bias", "value_conv.weight"}
    # float32: chunking changes the summation order, so the bar is the plain form's own rounding error
    # (against the float64 run of the same weights) where that exceeds TOL -- the bias gradients are
    # sums over all N x N energies with heavy cancellation, and their float32 noise is several 1e-6.
    truth = run(float64_twin(side, module), x.astype("float64"), upstream.astype("float64")) \
        if dtype == "float32" else plain
    for chunk in CHUNKS:
        module.query_chunk = chunk
        chunked = run(module, x, upstream)
        for name in plain:
            # The key bias gradient is zero in exact arithmetic (a per-row constant shift of the
            # energy leaves the softmax unchanged): both are rounding noise, so measure it against
            # the key weight gradient's scale instead of its own.
            scale = np.abs(plain["key_conv.weight"] if name == "key_conv.bias" else plain[name]).max()
            err = float(np.abs(chunked[name] - plain[name]).max() / scale)
            floor = float(np.abs(plain[name] - truth[name]).max() / scale)
            bar = max(TOL[dtype], 2 * floor)
            assert err <= bar, f"{side} {dtype} chunk {chunk} {name}: {err:.2e} > {bar:.2e} (plain: {floor:.1e})"
        module.query_chunk = None


def test_paddle_chunked_equals_torch_plain_float64():
    """Across the twins: Paddle's chunked form against torch's official N x N form."""
    x, upstream = data("float64")
    torch_module = make_torch("float64")
    paddle_module = make_paddle("float64")
    paddle_module.set_state_dict({k: paddle.to_tensor(v.detach().numpy())
                                  for k, v in torch_module.state_dict().items()})
    reference = torch_run(torch_module, x, upstream)
    paddle_module.query_chunk = 8
    ours = paddle_run(paddle_module, x, upstream)
    for name in reference:
        scale = reference["key_conv.weight"] if name == "key_conv.bias" else reference[name]
        assert np.abs(ours[name] - reference[name]).max() / np.abs(scale).max() <= 1e-12, name


@pytest.mark.parametrize("side", ["torch", "paddle"])
def test_chunks_bound_the_energy_matrix(side):
    x, _ = data("float32")
    shapes = []
    if side == "torch":
        module = make_torch("float32")
        module.softmax.register_forward_hook(lambda m, inputs, out: shapes.append(tuple(inputs[0].shape)))
        module.query_chunk = 8
        with torch.no_grad():
            module(torch.tensor(x))
    else:
        module = make_paddle("float32")
        module.softmax.register_forward_post_hook(lambda m, inputs, out: shapes.append(tuple(inputs[0].shape)))
        module.query_chunk = 8
        with paddle.no_grad():
            module(paddle.to_tensor(x))
    n = H * W
    assert shapes == [(2, 8, n)] * 4 + [(2, n - 32, n)]


def test_state_dict_keys_unchanged_and_bad_chunk_rejected():
    assert list(TorchPAM(C, query_chunk=4).state_dict()) == list(TorchPAM(C).state_dict())
    assert list(PaddlePAM(C, query_chunk=4).state_dict()) == list(PaddlePAM(C).state_dict())
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match="query_chunk"):
            TorchPAM(C, query_chunk=bad)
        with pytest.raises(ValueError, match="query_chunk"):
            PaddlePAM(C, query_chunk=bad)
        with pytest.raises(ValueError, match="query_chunk"):
            torch_set_chunk(TorchPAM(C), bad)
        with pytest.raises(ValueError, match="query_chunk"):
            paddle_set_chunk(PaddlePAM(C), bad)


def test_build_option_and_setter_on_models():
    torch_model = torch_ref.build_model("danet", num_classes=3, pam_query_chunk=10)
    paddle_model = paddle_models.build_model("danet", num_classes=3, pam_query_chunk=10)
    assert torch_model.head.sa.query_chunk == 10 and paddle_model.head.sa.query_chunk == 10
    assert torch_ref.build_model("danet", num_classes=3).head.sa.query_chunk is None
    # DASNet reuses DANet's head: the setter reaches its PAM as well
    assert paddle_set_chunk(paddle_models.build_model("dasnet"), 64) == 1
    assert torch_set_chunk(torch_ref.build_model("dasnet"), 64) == 1


def test_paddle_danet_chunked_equals_plain():
    """Whole DANet (eval, Paddle): 64x64 input -> 8x8 = 64 positions, chunk 10 does not divide it."""
    model = paddle_models.build_model("danet", num_classes=3)
    model.eval()
    model.head.sa.gamma.set_value(paddle.full([1], 0.5))
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype("float32"))
    with paddle.no_grad():
        plain = [o.numpy() for o in model(x)]
        set_count = paddle_set_chunk(model, 10)
        chunked = [o.numpy() for o in model(x)]
    assert set_count == 1
    for a, b in zip(chunked, plain):
        assert rel(a, b) <= 1e-6
