"""Position and channel attention modules of DANet (Fu et al., CVPR 2019), Paddle twin.

Names follow the official code (``query_conv``, ``key_conv``, ``value_conv``, ``gamma``) so that
converted official checkpoints load unchanged.
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
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2D(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2D(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2D(in_dim, in_dim, 1)
        self.gamma = _zero_scalar_parameter(self)
        self.softmax = nn.Softmax(axis=-1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b, c, h, w = x.shape
        query = self.query_conv(x).reshape([b, -1, h * w]).transpose([0, 2, 1])  # b, n, c/8
        key = self.key_conv(x).reshape([b, -1, h * w])  # b, c/8, n
        attention = self.softmax(paddle.bmm(query, key))  # b, n, n
        value = self.value_conv(x).reshape([b, -1, h * w])  # b, c, n
        out = paddle.bmm(value, attention.transpose([0, 2, 1])).reshape([b, c, h, w])
        return self.gamma * out + x


class CAM_Module(nn.Layer):
    """Channel attention: every channel attends to all C channels (no convolutions).

    energy = X X^T (B x C x C); the official code subtracts it from its row maximum before the
    softmax (so channels that are *less* similar get more weight); out = attention X.
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.gamma = _zero_scalar_parameter(self)
        self.softmax = nn.Softmax(axis=-1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape([b, c, -1])  # b, c, n
        energy = paddle.bmm(flat, flat.transpose([0, 2, 1]))  # b, c, c
        energy_new = energy.max(axis=-1, keepdim=True).expand_as(energy) - energy
        attention = self.softmax(energy_new)
        out = paddle.bmm(attention, flat).reshape([b, c, h, w])
        return self.gamma * out + x
