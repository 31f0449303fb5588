"""Context Guided blocks (CGNet, Wu et al., arXiv 1811.08201) in the form LSNet uses them.

LSNet (github qaz670756/LSNet, ``models/CGNet.py``) trims mmseg's CG block: the 1x1 (or strided
3x3) reduction conv has a bias and is followed by BN + PReLU, there is no bottleneck after a
downsampling block, and every BatchNorm uses eps 0.01. Attribute names equal the official ones
(``conv1x1.{0,1,2}``, ``f_loc``, ``f_sur``, ``bn``, ``activate``, ``f_glo.fc.{0,2}``) so official
weights load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn

from . import resize

CG_BN_EPS = 0.01  # the official build_norm_layer


def batch_norm(channels: int, eps: float = CG_BN_EPS) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps)


def prelu(channels: int) -> nn.PReLU:
    return nn.PReLU(num_parameters=channels)


class InputInjection(nn.Module):
    """``num_downsampling`` average pools (3x3, stride 2, pad 1, zero padding counted)."""

    def __init__(self, num_downsampling: int) -> None:
        super().__init__()
        self.pool = nn.ModuleList(nn.AvgPool2d(3, stride=2, padding=1) for _ in range(num_downsampling))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for pool in self.pool:
            x = pool(x)
        return x


class GlobalContextExtractor(nn.Module):
    """Squeeze-and-excitation: avgpool -> Linear(C, C/r) -> ReLU -> Linear(C/r, C) -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1 or channels < reduction:
            raise ValueError(f"GlobalContextExtractor: need 1 <= reduction <= channels, "
                             f"got channels={channels}, reduction={reduction}")
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.ReLU(),
            nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        gate = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)  # b, c, 1, 1
        return x * gate


class ContextGuidedBlock(nn.Module):
    """LSNet's CG block: reduce to out/2 channels, local + dilated depthwise context, SE gate.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels (even; the two context branches have out/2 each).
        dilation (int): dilation of the surrounding-context depthwise conv. Default 2.
        reduction (int): SE reduction of the global context extractor. Default 16.
        skip_connect (bool): add the input to the output (ignored when downsampling). Default True.
        downsample (bool): strided 3x3 reduction conv instead of a 1x1 one. Default False.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 2, reduction: int = 16,
                 skip_connect: bool = True, downsample: bool = False) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"ContextGuidedBlock: out_channels must be even, got {out_channels}")
        channels = out_channels // 2
        kernel_size, stride = (3, 2) if downsample else (1, 1)
        self.downsample = downsample
        self.conv1x1 = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2),
            batch_norm(channels),
            prelu(channels),
        )
        self.f_loc = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.f_sur = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation,
                               groups=channels, bias=False)
        self.bn = batch_norm(2 * channels)
        self.activate = prelu(2 * channels)
        self.skip_connect = skip_connect and not downsample
        if self.skip_connect and in_channels != out_channels:
            raise ValueError(f"ContextGuidedBlock: a residual block needs in_channels == out_channels, "
                             f"got {in_channels} -> {out_channels}")
        self.f_glo = GlobalContextExtractor(out_channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x)
        joint = self.activate(self.bn(torch.cat([self.f_loc(out), self.f_sur(out)], 1)))  # b, out, h, w
        out = self.f_glo(joint)
        return x + out if self.skip_connect else out


def cgblock(in_channels: int, out_channels: int, dilation: int = 2, reduction: int = 8) -> nn.Sequential:
    """A CG block without residual and without downsampling, wrapped as the official ``cgblock``
    (hence the ``.0.`` in its state-dict keys)."""
    return nn.Sequential(ContextGuidedBlock(in_channels, out_channels, dilation, reduction,
                                            skip_connect=False, downsample=False))


class UpBilinear2x(nn.Module):
    """x2 bilinear upsampling with align_corners=True (the official ``up(bilinear=True)``).

    A module rather than a function call so that forward hooks (``tools/model_stats.py``) see it.
    """

    stats_kind = "upsample_bilinear"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize.bilinear(x, (2 * x.shape[2], 2 * x.shape[3]))
