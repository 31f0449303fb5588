"""Context Guided blocks (CGNet, Wu et al., arXiv 1811.08201) in the form LSNet uses them — Paddle twin
of ``torch_ref/layers/context_guided.py`` (same classes, same attribute names).

Paddle-specific: BatchNorm momentum 0.9 (= torch 0.1), AvgPool2D ``exclusive=False`` (= torch's
``count_include_pad=True``), a ``PReLU`` whose slope is stored as ``weight`` (Paddle's own
names it ``_weight``) so that torch state-dict keys map one to one, and the SE gate's global average
pool computed as two means (``GlobalAvgPool2D``: Paddle's pool2d kernel rounds ~20-70x more).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from . import resize

CG_BN_EPS = 0.01  # the official build_norm_layer


def batch_norm(channels: int, eps: float = CG_BN_EPS) -> nn.BatchNorm2D:
    # Paddle momentum is 1 - torch momentum: 0.9 here == torch's default 0.1.
    return nn.BatchNorm2D(channels, momentum=0.9, epsilon=eps)


class PReLU(nn.PReLU):
    """Channel-wise PReLU (init 0.25) with its slope registered as ``weight``, as in torch."""

    def __init__(self, num_parameters: int) -> None:
        super().__init__(num_parameters=num_parameters, init=0.25)
        self.weight = self._parameters.pop("_weight")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.prelu(x, self.weight, data_format=self._data_format)


def prelu(channels: int) -> PReLU:
    return PReLU(channels)


class InputInjection(nn.Layer):
    """``num_downsampling`` average pools (3x3, stride 2, pad 1, zero padding counted)."""

    def __init__(self, num_downsampling: int) -> None:
        super().__init__()
        self.pool = nn.LayerList(
            [nn.AvgPool2D(3, stride=2, padding=1, exclusive=False) for _ in range(num_downsampling)])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for pool in self.pool:
            x = pool(x)
        return x


class GlobalAvgPool2D(nn.AdaptiveAvgPool2D):
    """``AdaptiveAvgPool2D(1)`` computed as a mean over W, then a mean over H (same value in exact
    arithmetic; float64 results equal to ~4e-16).

    Paddle's CPU pool2d kernel sums each window sequentially in float32, so a global pool's rounding
    grows with H * W: max relative error 2e-6 at 64x64 and 9e-6 at 256x256, against 1.2e-7 for torch's
    ``adaptive_avg_pool2d(x, 1)`` (a ``mean`` with cascade summation). Through the SE gates this made
    LSNet's float32 outputs ~1.2-2.4x (64x64) and up to 12x (256x256) further from float64 than torch's.
    Two short reductions round to 2-5e-7 and run no slower (measured faster). Still an
    ``AdaptiveAvgPool2D`` for ``tools/model_stats.py``.
    """

    def __init__(self) -> None:
        super().__init__(1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.mean(axis=3, keepdim=True).mean(axis=2, keepdim=True)


class GlobalContextExtractor(nn.Layer):
    """Squeeze-and-excitation: avgpool -> Linear(C, C/r) -> ReLU -> Linear(C/r, C) -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1 or channels < reduction:
            raise ValueError(f"GlobalContextExtractor: need 1 <= reduction <= channels, "
                             f"got channels={channels}, reduction={reduction}")
        self.avg_pool = GlobalAvgPool2D()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.ReLU(),
            nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        b, c = x.shape[:2]
        gate = self.fc(self.avg_pool(x).reshape([b, c])).reshape([b, c, 1, 1])  # b, c, 1, 1
        return x * gate


class ContextGuidedBlock(nn.Layer):
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
            nn.Conv2D(in_channels, channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2),
            batch_norm(channels),
            prelu(channels),
        )
        self.f_loc = nn.Conv2D(channels, channels, 3, padding=1, groups=channels, bias_attr=False)
        self.f_sur = nn.Conv2D(channels, channels, 3, padding=dilation, dilation=dilation,
                               groups=channels, bias_attr=False)
        self.bn = batch_norm(2 * channels)
        self.activate = prelu(2 * channels)
        self.skip_connect = skip_connect and not downsample
        if self.skip_connect and in_channels != out_channels:
            raise ValueError(f"ContextGuidedBlock: a residual block needs in_channels == out_channels, "
                             f"got {in_channels} -> {out_channels}")
        self.f_glo = GlobalContextExtractor(out_channels, reduction)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.conv1x1(x)
        joint = self.activate(self.bn(paddle.concat([self.f_loc(out), self.f_sur(out)], 1)))  # b, out, h, w
        out = self.f_glo(joint)
        return x + out if self.skip_connect else out


def cgblock(in_channels: int, out_channels: int, dilation: int = 2, reduction: int = 8) -> nn.Sequential:
    """A CG block without residual and without downsampling, wrapped as the official ``cgblock``
    (hence the ``.0.`` in its state-dict keys)."""
    return nn.Sequential(ContextGuidedBlock(in_channels, out_channels, dilation, reduction,
                                            skip_connect=False, downsample=False))


class UpBilinear2x(nn.Layer):
    """x2 bilinear upsampling with align_corners=True (the official ``up(bilinear=True)``).

    A layer rather than a function call so that forward post hooks (``tools/model_stats.py``) see it.
    """

    stats_kind = "upsample_bilinear"

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return resize.bilinear(x, (2 * x.shape[2], 2 * x.shape[3]))
