"""Coordinate attention (Hou et al., "Coordinate Attention for Efficient Mobile Network Design",
CVPR 2021, arXiv 2103.02907) as LSNet's head uses it (github qaz670756/LSNet,
``models/CoordAttention.py``): names ``conv1``, ``bn1`` (torch-default eps 1e-5), ``conv2``,
``conv3``; h_swish activation; output = x * a_w * a_h.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HSwish(nn.Module):
    """x * relu6(x + 3) / 6, evaluated in the official order (torch's Hardswish kernel rounds
    differently: it multiplies before dividing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (F.relu6(x + 3) / 6)


class CoordAtt(nn.Module):
    """Pool along W and along H, a shared 1x1 conv to max(8, C/groups), then two sigmoid gates.

    Args:
        in_channels (int): input channels.
        out_channels (int): gate channels (must equal in_channels for the final product).
        groups (int): channel reduction of the shared conv. Default 32.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 32) -> None:
        super().__init__()
        mid = max(8, in_channels // groups)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, out_channels, 1)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.act = HSwish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        x_h = x.mean(dim=3, keepdim=True)  # b, c, h, 1
        x_w = x.mean(dim=2, keepdim=True).permute(0, 1, 3, 2)  # b, c, w, 1
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], 2))))  # b, mid, h + w, 1
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv2(y_h).sigmoid()  # b, c, h, 1
        a_w = self.conv3(y_w.permute(0, 1, 3, 2)).sigmoid()  # b, c, 1, w
        return x * a_w * a_h
