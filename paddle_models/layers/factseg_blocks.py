"""FactSeg building blocks (Paddle twin of ``torch_ref/layers/factseg_blocks.py``).

``FPN``: lateral 1x1 convs ``fpn_inner1..4`` and output 3x3 convs ``fpn_layer1..4`` with bias,
kaiming_uniform(a=1) weights and zero bias (SimpleCV / maskrcnn-benchmark), nearest x2 top-down path.
``AssymetricDecoder``: per scale Conv3x3 (no bias) - BatchNorm - ReLU - bilinear x2 (align_corners=True)
layers (``rsrepro.factseg.decoder_plan``), averaged over the scales. The decoder convs start from torch's
default initialisation (``torch_default_init``) so that a Paddle run starts from the same distribution
as the official one; the BatchNorm momentum is torch's 0.1 (Paddle 0.9).
"""

from __future__ import annotations

import math
from typing import List, Sequence

import paddle
import paddle.nn.functional as F
from paddle import nn

from rsrepro.factseg import decoder_plan

from ..backbones.resnet import batch_norm
from . import resize


def _uniform_(param: paddle.Tensor, bound: float) -> None:
    param.set_value(paddle.uniform(param.shape, dtype=param.dtype, min=-bound, max=bound))


def torch_default_init(conv: nn.Conv2D) -> nn.Conv2D:
    """torch's default Conv2d init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias likewise."""
    fan_in = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3]
    bound = 1.0 / math.sqrt(fan_in)
    _uniform_(conv.weight, bound)
    if conv.bias is not None:
        _uniform_(conv.bias, bound)
    return conv


class FPN(nn.Layer):
    """Feature pyramid on (c2, c3, c4, c5); returns (p2, p3, p4, p5), highest resolution first."""

    def __init__(self, in_channels_list: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.num_levels = len(in_channels_list)
        for idx, in_channels in enumerate(in_channels_list, 1):
            self.add_sublayer(f"fpn_inner{idx}", nn.Conv2D(in_channels, out_channels, 1))
            self.add_sublayer(f"fpn_layer{idx}", nn.Conv2D(out_channels, out_channels, 3, padding=1))
        for conv in self.children():
            # kaiming_uniform(a=1): gain sqrt(2 / (1 + a^2)) = 1, bound = sqrt(3 / fan_in).
            fan_in = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3]
            _uniform_(conv.weight, math.sqrt(3.0 / fan_in))
            conv.bias.set_value(paddle.zeros_like(conv.bias))

    def forward(self, feats: Sequence[paddle.Tensor]) -> List[paddle.Tensor]:
        n = self.num_levels
        last_inner = getattr(self, f"fpn_inner{n}")(feats[n - 1])
        results = [getattr(self, f"fpn_layer{n}")(last_inner)]
        for idx in range(n - 1, 0, -1):
            # x2 nearest by explicit output size, not scale_factor=2: bit-identical (the kernel's source
            # ratio is 0.5 either way), and Paddle 3.3 stores a scale_factor as ArrayAttribute<Double>,
            # which paddle2onnx 2.1 rejects ("the 0th elementwise MUST be ir::FloatAttribute").
            # x.shape[i] of a dynamic dim is traced under export, as in Upsample2x.
            top_down = F.interpolate(last_inner, size=[2 * last_inner.shape[2], 2 * last_inner.shape[3]],
                                     mode="nearest")
            last_inner = getattr(self, f"fpn_inner{idx}")(feats[idx - 1]) + top_down
            results.insert(0, getattr(self, f"fpn_layer{idx}")(last_inner))
        return results


class Upsample2x(nn.Layer):
    """Bilinear x2 with align_corners=True (torch ``nn.UpsamplingBilinear2d(scale_factor=2)``)."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return resize.bilinear(x, (2 * x.shape[2], 2 * x.shape[3]))


def decoder_layer(in_channels: int, out_channels: int, upsample: bool) -> nn.Sequential:
    return nn.Sequential(
        torch_default_init(nn.Conv2D(in_channels, out_channels, 3, padding=1, bias_attr=False)),
        batch_norm(out_channels),
        nn.ReLU(),
        Upsample2x() if upsample else nn.Identity(),
    )


class AssymetricDecoder(nn.Layer):
    """Brings every FPN level to ``out_stride`` and averages them (official name, sic)."""

    def __init__(self, in_channels: int, out_channels: int, in_strides: Sequence[int] = (4, 8, 16, 32),
                 out_stride: int = 4) -> None:
        super().__init__()
        self.blocks = nn.LayerList()
        for stride in in_strides:
            num_layers, upsample = decoder_plan(stride, out_stride)
            self.blocks.append(nn.Sequential(*[
                decoder_layer(in_channels if j == 0 else out_channels, out_channels, upsample)
                for j in range(num_layers)]))

    def forward(self, feats: Sequence[paddle.Tensor]) -> paddle.Tensor:
        out = self.blocks[0](feats[0])
        for block, feat in zip(self.blocks[1:], feats[1:]):
            out = out + block(feat)
        return out / float(len(self.blocks))
