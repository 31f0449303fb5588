"""Position and channel attention modules of DANet (Fu et al., CVPR 2019).

Names follow the official code (``query_conv``, ``key_conv``, ``value_conv``, ``gamma``) so that
official checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class PAM_Module(nn.Module):
    """Position attention: every position attends to all H*W positions.

    energy = Q^T K (B x N x N), attention = softmax over the last axis,
    out = V attention^T, result = gamma * out + x with gamma initialised to 0.
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)  # b, n, c/8
        key = self.key_conv(x).view(b, -1, h * w)  # b, c/8, n
        attention = self.softmax(torch.bmm(query, key))  # b, n, n
        value = self.value_conv(x).view(b, -1, h * w)  # b, c, n
        out = torch.bmm(value, attention.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


class CAM_Module(nn.Module):
    """Channel attention: every channel attends to all C channels (no convolutions).

    energy = X X^T (B x C x C); the official code subtracts it from its row maximum before the
    softmax (so channels that are *less* similar get more weight); out = attention X.
    """

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.view(b, c, -1)  # b, c, n
        energy = torch.bmm(flat, flat.permute(0, 2, 1))  # b, c, c
        energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
        attention = self.softmax(energy_new)
        out = torch.bmm(attention, flat).view(b, c, h, w)
        return self.gamma * out + x
