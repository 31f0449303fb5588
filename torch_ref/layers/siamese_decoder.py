"""DASNet-V2's SiameseDecoder (torch reference).

Three up-sampling blocks ``UpBlock1..3``, each ConvTranspose(kernel 4, stride 2, padding 1, with bias)
+ BatchNorm + LeakyReLU(0.01), channels C -> C/2 -> C/4 -> ``out_channels``: x8 in each spatial
dimension (32x32 -> 256x256 for a 256x256 image). Names follow silence-tang/DASNet-V2
``model/siameseNet/dares.py``, so its checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.01),
    )


class SiameseDecoder(nn.Module):
    """Shared decoder applied to every embedding of both times (x8 upsampling)."""

    def __init__(self, in_channels: int = 512, out_channels: int = 32) -> None:
        super().__init__()
        self.UpBlock1 = up_block(in_channels, in_channels // 2)
        self.UpBlock2 = up_block(in_channels // 2, in_channels // 4)
        self.UpBlock3 = up_block(in_channels // 4, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.UpBlock3(self.UpBlock2(self.UpBlock1(x)))  # b, out, 8h, 8w
