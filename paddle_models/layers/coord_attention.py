"""Coordinate attention (Hou et al., "Coordinate Attention for Efficient Mobile Network Design",
CVPR 2021, arXiv 2103.02907) as LSNet's head uses it — Paddle twin of
``torch_ref/layers/coord_attention.py``: names ``conv1``, ``bn1`` (eps 1e-5, the torch default,
unlike the CG blocks' 0.01), ``conv2``, ``conv3``; h_swish activation; output = x * a_w * a_h.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn


class HSwish(nn.Layer):
    """x * relu6(x + 3) / 6, evaluated in the official order."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * (F.relu6(x + 3) / 6)


class CoordAtt(nn.Layer):
    """Pool along W and along H, a shared 1x1 conv to max(8, C/groups), then two sigmoid gates.

    Args:
        in_channels (int): input channels.
        out_channels (int): gate channels (must equal in_channels for the final product).
        groups (int): channel reduction of the shared conv. Default 32.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 32) -> None:
        super().__init__()
        mid = max(8, in_channels // groups)
        self.conv1 = nn.Conv2D(in_channels, mid, 1)
        self.bn1 = nn.BatchNorm2D(mid, momentum=0.9, epsilon=1e-5)
        self.conv2 = nn.Conv2D(mid, out_channels, 1)
        self.conv3 = nn.Conv2D(mid, out_channels, 1)
        self.act = HSwish()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        h, w = x.shape[2:]
        x_h = x.mean(axis=3, keepdim=True)  # b, c, h, 1
        x_w = x.mean(axis=2, keepdim=True).transpose([0, 1, 3, 2])  # b, c, w, 1
        y = self.act(self.bn1(self.conv1(paddle.concat([x_h, x_w], 2))))  # b, mid, h + w, 1
        y_h, y_w = paddle.split(y, [h, w], axis=2)
        a_h = F.sigmoid(self.conv2(y_h))  # b, c, h, 1
        a_w = F.sigmoid(self.conv3(y_w.transpose([0, 1, 3, 2])))  # b, c, 1, w
        return x * a_w * a_h
