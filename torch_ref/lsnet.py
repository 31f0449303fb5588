"""LSNet: extremely light-weight siamese change detection — PyTorch reference.

Paper: Biyuan Liu, Huaixin Chen, Zhixi Wang, Wenqiang Xie, Lingyu Shuai, "LSNet: Extremely
Light-Weight Siamese Network for Change Detection of Remote Sensing Image", IGARSS 2022,
https://arxiv.org/abs/2201.09156.
Official code: https://github.com/qaz670756/LSNet (``models/Models.py``, ``models/CGNet.py``,
``models/CoordAttention.py``; derived from SNUNet-CD, github likyoo/Siam-NestedUNet).

Structure (``backbone.*``, ``head.*``, ``FPN.*``; state-dict keys and shapes equal the official
ones for all three variants, ``official_keys.json``):

- ``LightSiameseBackbone``: ONE pass over cat([t0, t1], 0), so BatchNorm statistics are joint over
  both dates; every stage output is split back into its t0 and t1 halves. Stages of CG blocks
  (3, 3, 8, 12 blocks; 32, 64, 128, 256 channels; dilations 1, 2, 4, 8; SE reductions 4, 8, 16,
  32), each closed by BN + PReLU over a concat: stem [x, input] 35 ch @1, level1
  [x, first block, avgpool(input)] 131 ch @1/2, level2 [x, first block] 256 ch @1/4, level3 512 ch
  @1/8.
- ``DiffFPN`` (variants "diffFPN" and "thin_diffFPN"): lateral CG blocks on cat[t0_i, t1_i] to
  32*2^i channels, a top-down pass adding up2x(cgblock(level i -> level i-1)), then nested rounds
  of "diff" CG blocks on cat[level i, up2x(level i+1)]. diffFPN: rounds over levels (0, 1, 2) and
  (0, 1), then a last cgblock(96 -> 64): outputs 32 + 32 + 64 = 128 ch. thin_diffFPN: one round
  over (0, 1), then the last cgblock(96 -> 64): outputs 32 + 64 = 96 ch.
- ``DenseFPN`` (variant "denseFPN"): UNet++-like nodes conv{i}_{j} on the concatenated t0/t1
  backbone features, the earlier nodes of the same row and up2x of the node below; three 32-ch
  outputs (96 ch).
- ``CamHead``: coordinate attention (groups 16) over the concatenated FPN outputs, then a 1x1 conv
  to the class logits.

How the two non-default variants were pinned down (documented because their code is not quoted in
the spec): every CG block's key group gives (in, out, reduction) exactly — ``conv1x1.0.weight`` is
[out/2, in, k, k] and ``f_glo.fc.0.weight`` is [out/r, out]. thin_diffFPN: lateral/top-down convs
identical to diffFPN, but only three diff convs: 96->32 (r 4), 192->64 (r 8), 96->64 (r 4), i.e. one
round over levels 0 and 1 (a level-2 diff conv, 384->128, is absent) and the final 96->64 block;
the head has 96 channels = 32 + 64, so the outputs are (x0_1, x0_2). denseFPN: nodes conv0_1
332 = 2*35 + 2*131 (both dates of levels 0 and up2x of both dates of level 1), conv1_1 774 =
2*131 + 2*256, conv2_1 1536 = 2*256 + 2*512, conv0_2 166 = 70 + 32 + 64 (x0_1 and up2x(x1_1)),
conv1_2 454 = 262 + 64 + 128, conv0_3 198 = 70 + 32 + 32 + 64 (x0_1, x0_2, up2x(x1_2)); all with
32*2^i outputs and the backbone reductions of their level, and a 96-ch head = three 32-ch outputs.
The channel sums fix the concatenation contents but not their order; the order and the dilations
(not visible in the keys: depthwise 3x3 weights have the same shape for every dilation) were read
from the official ``models/Models.py`` (commit b510dcc). Parameter counts then equal the official
1,216,848 / 1,176,728 / 1,104,732 (1,207,706 / 1,167,922 / 1,096,694 without PReLU slopes, the
README's figures).

Forward returns the official 5-tuple: (x0_1, x0_2, x0_3, x0_3, out) for diffFPN and denseFPN,
(x0_1, x0_2, x0_2, x0_2, out) for thin_diffFPN; ``out`` (B, num_classes, H, W) are the logits, the
only element training and evaluation use. Inputs are raw 0-255 pixel values (no normalisation).
H and W must be multiples of 8.

Args of ``build_model("lsnet", ...)``:
    variant (str): "diffFPN" (default), "thin_diffFPN" or "denseFPN".
    in_channels (int): channels of each input image. Default 3.
    num_classes (int): output classes. Default 2.
    mid_channels (int): FPN width at the finest level (diffFPN variants). Default 32.

Deviations from the official code (none changes a parameter or an output value):
- ``forward(t0, t1)`` takes the two dates and concatenates them along the batch itself; the
  official ``forward(x)`` takes the concatenated batch.
- Parameter-free modules that are never called are left out (``backbone.inject_4x``; denseFPN's
  ``Up2x``), and the stateless per-branch upsamplers are one shared ``up2x``.
- CoordAtt averages with ``mean`` instead of building ``AdaptiveAvgPool2d`` modules in every
  forward; the top-down sum is written out of place; the ``debug`` thop printout is dropped.

The official behaviour this file follows (architecture, checkpoint names, official bugs and what is done
about each, recipe, reported numbers) is written up in ``docs/lsnet.md``.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from rsrepro.lsnet import (
    DIFF_ROUNDS,
    DILATIONS,
    FILTERS,
    NUM_BLOCKS,
    REDUCTIONS,
    backbone_channels,
    check_pair,
    check_variant,
    head_channels,
)

from .layers.context_guided import (
    ContextGuidedBlock,
    InputInjection,
    UpBilinear2x,
    batch_norm,
    cgblock,
    prelu,
)
from .layers.coord_attention import CoordAtt
from .registry import MODELS


def norm_prelu(channels: int) -> nn.Sequential:
    return nn.Sequential(batch_norm(channels), prelu(channels))


def split_pair(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    half = x.shape[0] // 2
    return x[:half], x[half:]


class LightSiameseBackbone(nn.Module):
    """Four CG stages on the batch-concatenated pair; returns [A0, B0, A1, B1, A2, B2, A3, B3]."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.inject_2x = InputInjection(1)
        self.stem = nn.ModuleList(
            ContextGuidedBlock(in_channels if i == 0 else FILTERS[0], FILTERS[0], DILATIONS[0],
                               REDUCTIONS[0], skip_connect=i != 0, downsample=False)
            for i in range(NUM_BLOCKS[0]))
        self.out_channels = backbone_channels(in_channels)
        self.norm_prelu_0 = norm_prelu(self.out_channels[0])
        self.level1 = self._stage(1)
        self.norm_prelu_1 = norm_prelu(self.out_channels[1])
        self.level2 = self._stage(2)
        self.norm_prelu_2 = norm_prelu(self.out_channels[2])
        self.level3 = self._stage(3)
        self.norm_prelu_3 = norm_prelu(self.out_channels[3])

    def _stage(self, level: int) -> nn.ModuleList:
        return nn.ModuleList(
            ContextGuidedBlock(self.out_channels[level - 1] if i == 0 else FILTERS[level], FILTERS[level],
                               DILATIONS[level], REDUCTIONS[level], downsample=i == 0)
            for i in range(NUM_BLOCKS[level]))

    @staticmethod
    def _run_stage(blocks: nn.ModuleList, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        first = x = blocks[0](x)
        for block in blocks[1:]:
            x = block(x)
        return x, first

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        # The official names this x2-downsampled input "inp_4x": it joins level 1 (1/2 resolution).
        inp_half = self.inject_2x(x)
        stem = x
        for block in self.stem:
            stem = block(stem)
        x0 = self.norm_prelu_0(torch.cat([stem, x], 1))  # 2b, 35, h, w
        x, first = self._run_stage(self.level1, x0)
        x1 = self.norm_prelu_1(torch.cat([x, first, inp_half], 1))  # 2b, 131, h/2, w/2
        x, first = self._run_stage(self.level2, x1)
        x2 = self.norm_prelu_2(torch.cat([x, first], 1))  # 2b, 256, h/4, w/4
        x, first = self._run_stage(self.level3, x2)
        x3 = self.norm_prelu_3(torch.cat([x, first], 1))  # 2b, 512, h/8, w/8
        return [half for feat in (x0, x1, x2, x3) for half in split_pair(feat)]


class DiffFPN(nn.Module):
    """Lateral + top-down pyramid, then nested rounds of diff CG blocks (see the module docstring).

    ``rounds`` lists how many levels each nested round covers: (3, 2) for diffFPN, (2,) for the
    thin variant. Returns the first map of every round and the final block's output.
    """

    def __init__(self, in_channels: Sequence[int], mid_channels: int, rounds: Sequence[int]) -> None:
        super().__init__()
        self.rounds = tuple(rounds)
        width = [mid_channels * 2 ** i for i in range(4)]
        self.lateral_convs = nn.ModuleList(
            cgblock(2 * in_channels[i], width[i], DILATIONS[i], REDUCTIONS[i]) for i in range(4))
        self.top_down_convs = nn.ModuleList(
            cgblock(width[i], width[i - 1], DILATIONS[i], REDUCTIONS[i]) for i in range(3, 0, -1))
        self.diff_convs = nn.ModuleList(
            cgblock(3 * width[i], width[i], DILATIONS[i], REDUCTIONS[i])
            for levels in self.rounds for i in range(levels))
        self.diff_convs.append(cgblock(3 * width[0], width[1], DILATIONS[0], REDUCTIONS[0]))
        self.up2x = UpBilinear2x()

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        tmp = [conv(torch.cat([feats[2 * i], feats[2 * i + 1]], 1))
               for i, conv in enumerate(self.lateral_convs)]
        for i in range(3, 0, -1):
            tmp[i - 1] = tmp[i - 1] + self.up2x(self.top_down_convs[3 - i](tmp[i]))
        outputs = []
        start = 0
        for levels in self.rounds:
            tmp = [self.diff_convs[start + i](torch.cat([tmp[i], self.up2x(tmp[i + 1])], 1))
                   for i in range(levels)]
            outputs.append(tmp[0])
            start += levels
        outputs.append(self.diff_convs[start](torch.cat([tmp[0], self.up2x(tmp[1])], 1)))
        return tuple(outputs)


class DenseFPN(nn.Module):
    """UNet++-like nested decoder on both dates' features; returns (x0_1, x0_2, x0_3), 32 ch each."""

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__()
        c = [2 * ch for ch in in_channels]  # both dates concatenated
        f = FILTERS

        def node(level: int, channels: int) -> nn.Sequential:
            return cgblock(channels, f[level], DILATIONS[level], REDUCTIONS[level])

        self.conv0_1 = node(0, c[0] + c[1])
        self.conv1_1 = node(1, c[1] + c[2])
        self.conv2_1 = node(2, c[2] + c[3])
        self.conv0_2 = node(0, c[0] + f[0] + f[1])
        self.conv1_2 = node(1, c[1] + f[1] + f[2])
        self.conv0_3 = node(0, c[0] + 2 * f[0] + f[1])
        self.up2x = UpBilinear2x()

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a0, b0, a1, b1, a2, b2, a3, b3 = feats
        up = self.up2x
        x0_1 = self.conv0_1(torch.cat([a0, b0, up(a1), up(b1)], 1))
        x1_1 = self.conv1_1(torch.cat([a1, b1, up(a2), up(b2)], 1))
        x2_1 = self.conv2_1(torch.cat([a2, b2, up(a3), up(b3)], 1))
        x0_2 = self.conv0_2(torch.cat([a0, b0, x0_1, up(x1_1)], 1))
        x1_2 = self.conv1_2(torch.cat([a1, b1, x1_1, up(x2_1)], 1))
        x0_3 = self.conv0_3(torch.cat([a0, b0, x0_1, x0_2, up(x1_2)], 1))
        return x0_1, x0_2, x0_3


class CamHead(nn.Module):
    """Coordinate attention over the concatenated FPN outputs, then 1x1 conv to the logits."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.ca = CoordAtt(in_channels, in_channels, groups=16)
        self.conv_final = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, *maps: torch.Tensor) -> torch.Tensor:
        return self.conv_final(self.ca(torch.cat(maps, 1)))


class LSNet(nn.Module):
    """LSNet with one of the three official decoders; see the module docstring."""

    size_divisor = 8  # input H, W: three stride-2 stages (rsrepro.lsnet.check_pair)

    def __init__(self, variant: str = "diffFPN", in_channels: int = 3, num_classes: int = 2,
                 mid_channels: int = 32) -> None:
        super().__init__()
        self.variant = check_variant(variant)
        # Registration order backbone, head, FPN = the official state-dict order.
        self.backbone = LightSiameseBackbone(in_channels)
        self.head = CamHead(head_channels(variant, mid_channels), num_classes)
        if variant == "denseFPN":
            self.FPN = DenseFPN(self.backbone.out_channels)
        else:
            self.FPN = DiffFPN(self.backbone.out_channels, mid_channels, DIFF_ROUNDS[variant])
        self._init_weights()

    def _init_weights(self) -> None:
        # As the official: only conv weights and BN affine are re-initialised; conv biases,
        # Linear layers and PReLU slopes keep torch's defaults.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, t0: torch.Tensor, t1: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        check_pair(t0.shape, t1.shape)
        feats = self.backbone(torch.cat([t0, t1], 0))
        maps = self.FPN(feats)
        out = self.head(*maps)
        if len(maps) == 2:  # thin_diffFPN
            return maps[0], maps[1], maps[1], maps[1], out
        return maps[0], maps[1], maps[2], maps[2], out



@MODELS.register("lsnet")
def lsnet(variant: str = "diffFPN", in_channels: int = 3, num_classes: int = 2,
          mid_channels: int = 32) -> LSNet:
    return LSNet(variant, in_channels, num_classes, mid_channels)
