"""FactSeg building blocks (torch reference): the FPN and the AssymetricDecoder.

``FPN`` follows SimpleCV's ``simplecv/module/fpn.py`` (itself maskrcnn-benchmark's): lateral 1x1 convs
``fpn_inner1..4`` and output 3x3 convs ``fpn_layer1..4``, all with bias, kaiming_uniform(a=1) weights
and zero bias, no norm or activation; top-down nearest x2 upsampling of the running inner feature added
to the next lateral. ``AssymetricDecoder`` follows FactSeg's ``module/semantic_fpn.py``: per input scale
``blocks.i`` = ``rsrepro.factseg.decoder_plan`` layers of Conv3x3 (no bias) - BatchNorm - ReLU - bilinear
x2 (align_corners=True), summed over the scales and divided by their number (4). Module names and
registration order equal the official ones, so the state-dict keys do too.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsrepro.factseg import decoder_plan

from . import resize


class FPN(nn.Module):
    """Feature pyramid on (c2, c3, c4, c5); returns (p2, p3, p4, p5), highest resolution first."""

    def __init__(self, in_channels_list: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.num_levels = len(in_channels_list)
        for idx, in_channels in enumerate(in_channels_list, 1):
            self.add_module(f"fpn_inner{idx}", nn.Conv2d(in_channels, out_channels, 1))
            self.add_module(f"fpn_layer{idx}", nn.Conv2d(out_channels, out_channels, 3, padding=1))
        for module in self.children():
            # Caffe2's XavierFill, as the official conv_with_kaiming_uniform.
            nn.init.kaiming_uniform_(module.weight, a=1)
            nn.init.constant_(module.bias, 0)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        n = self.num_levels
        last_inner = getattr(self, f"fpn_inner{n}")(feats[n - 1])
        results = [getattr(self, f"fpn_layer{n}")(last_inner)]
        for idx in range(n - 1, 0, -1):
            top_down = F.interpolate(last_inner, scale_factor=2, mode="nearest")
            last_inner = getattr(self, f"fpn_inner{idx}")(feats[idx - 1]) + top_down
            results.insert(0, getattr(self, f"fpn_layer{idx}")(last_inner))
        return results


class Upsample2x(nn.Module):
    """Bilinear x2 with align_corners=True (``nn.UpsamplingBilinear2d(scale_factor=2)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize.bilinear(x, (2 * x.shape[2], 2 * x.shape[3]))


def decoder_layer(in_channels: int, out_channels: int, upsample: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        Upsample2x() if upsample else nn.Identity(),
    )


class AssymetricDecoder(nn.Module):
    """Brings every FPN level to ``out_stride`` and averages them (official name, sic)."""

    def __init__(self, in_channels: int, out_channels: int, in_strides: Sequence[int] = (4, 8, 16, 32),
                 out_stride: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for stride in in_strides:
            num_layers, upsample = decoder_plan(stride, out_stride)
            self.blocks.append(nn.Sequential(*[
                decoder_layer(in_channels if j == 0 else out_channels, out_channels, upsample)
                for j in range(num_layers)]))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.blocks[0](feats[0])
        for block, feat in zip(self.blocks[1:], feats[1:]):
            out = out + block(feat)
        return out / float(len(self.blocks))
