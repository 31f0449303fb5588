"""Position and channel attention modules of DANet (Fu et al., CVPR 2019), Paddle twin.

Names follow the official code (``query_conv``, ``key_conv``, ``value_conv``, ``gamma``) so that
converted official checkpoints load unchanged.

``PAM_Module(in_dim, query_chunk=n)`` computes the same attention ``n`` query rows at a time: the
softmax is taken per row, so the result is exact (up to matmul summation order, ~1e-7 relative in
float32) while the live energy matrix shrinks from N x N to n x N. ``set_pam_query_chunk`` switches a
built model. Gradients flow through the chunks by plain autograd (no recomputation), so training keeps
every chunk's attention for backward and saves no memory; the saving is for inference. Export:
with ``query_chunk`` set, ``paddle.jit.save`` works at fixed input shapes (the chunk loop unrolls;
exported == dygraph), but with dynamic H/W the trace did not finish in 10 minutes — export with
``query_chunk=None`` (the default) for dynamic shapes.
"""

from __future__ import annotations

import paddle
from paddle import nn


def _zero_scalar_parameter(layer: nn.Layer) -> paddle.Tensor:
    return layer.create_parameter(
        shape=[1], dtype=paddle.get_default_dtype(),
        default_initializer=nn.initializer.Constant(0.0))


class PAM_Module(nn.Layer):
    """Position attention: every position attends to all H*W positions.

    energy = Q^T K (B x N x N), attention = softmax over the last axis,
    out = V attention^T, result = gamma * out + x with gamma initialised to 0.
    ``query_chunk``: if set, the attention is computed that many query rows at a time (exact; bounds
    the energy matrix to query_chunk x N). None (default) is the official single N x N product.
    """

    def __init__(self, in_dim: int, query_chunk: int | None = None) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.query_chunk = _check_chunk(query_chunk)
        self.query_conv = nn.Conv2D(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2D(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2D(in_dim, in_dim, 1)
        self.gamma = _zero_scalar_parameter(self)
        self.softmax = nn.Softmax(axis=-1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b, c, h, w = x.shape
        query = self.query_conv(x).reshape([b, -1, h * w]).transpose([0, 2, 1])  # b, n, c/8
        key = self.key_conv(x).reshape([b, -1, h * w])  # b, c/8, n
        value = self.value_conv(x).reshape([b, -1, h * w])  # b, c, n
        if self.query_chunk is None:
            attention = self.softmax(paddle.bmm(query, key))  # b, n, n
            out = paddle.bmm(value, attention.transpose([0, 2, 1]))
        else:
            out = paddle.concat([self._rows(query[:, start:start + self.query_chunk], key, value)
                                 for start in range(0, h * w, self.query_chunk)], axis=2)
        return self.gamma * out.reshape([b, c, h, w]) + x

    def _rows(self, query: paddle.Tensor, key: paddle.Tensor, value: paddle.Tensor) -> paddle.Tensor:
        attention = self.softmax(paddle.bmm(query, key))  # b, m, n
        return paddle.bmm(value, attention.transpose([0, 2, 1]))  # b, c, m


class CAM_Module(nn.Layer):
    """Channel attention: every channel attends to all C channels (no convolutions).

    energy = X X^T (B x C x C); the official code subtracts it from its row maximum before the
    softmax (so channels that are *less* similar get more weight); out = attention X.

    Args:
        in_dim: number of channels C.
        detach_max: stop the gradient through the row maximum (default True, unlike the torch
            reference). Exact: softmax is shift-invariant per row, so the maximum's gradient is
            sum_j dL/d(energy_new_ij) = 0 and only rounding noise flows through it. Paddle 3.3's CPU
            ``max`` backward is slow (0.76 s vs 0.27 s for a 2x512x64x64 CAM forward+backward on one
            thread); forward values are identical either way.
    """

    def __init__(self, in_dim: int, detach_max: bool = True) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.gamma = _zero_scalar_parameter(self)
        self.softmax = nn.Softmax(axis=-1)
        self.detach_max = detach_max

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape([b, c, -1])  # b, c, n
        energy = paddle.bmm(flat, flat.transpose([0, 2, 1]))  # b, c, c
        row_max = energy.max(axis=-1, keepdim=True)
        if self.detach_max:
            row_max = row_max.detach()
        # broadcast, not row_max.expand_as(energy): bit-identical, and expand_as would bake energy's traced
        # shape [-1, C, C] into an exported program (ONNX Expand to [-1, 512, 512]: onnxruntime rejects it).
        attention = self.softmax(row_max - energy)
        out = paddle.bmm(attention, flat).reshape([b, c, h, w])
        return self.gamma * out + x


def _check_chunk(query_chunk: int | None) -> int | None:
    if query_chunk is not None and (isinstance(query_chunk, bool) or not isinstance(query_chunk, int)
                                    or query_chunk < 1):
        raise ValueError(f"query_chunk must be None or a positive int, got {query_chunk!r}")
    return query_chunk


def set_pam_query_chunk(model: nn.Layer, query_chunk: int | None) -> int:
    """Set ``query_chunk`` on every PAM_Module in ``model``; returns how many were changed."""
    query_chunk = _check_chunk(query_chunk)
    modules = [m for m in model.sublayers(include_self=True) if isinstance(m, PAM_Module)]
    for module in modules:
        module.query_chunk = query_chunk
    return len(modules)
