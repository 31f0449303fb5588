"""LSNet: extremely light-weight siamese change detection — PaddlePaddle implementation.

Paper: Biyuan Liu, Huaixin Chen, Zhixi Wang, Wenqiang Xie, Lingyu Shuai, "LSNet: Extremely
Light-Weight Siamese Network for Change Detection of Remote Sensing Image", IGARSS 2022,
https://arxiv.org/abs/2201.09156.
Official code: https://github.com/qaz670756/LSNet (``models/Models.py``, ``models/CGNet.py``,
``models/CoordAttention.py``).

Mirrors ``torch_ref/lsnet.py`` class for class (its docstring explains the structure and how the
thin_diffFPN and denseFPN variants were pinned down from the official key lists): a CG-block
backbone run once over cat([t0, t1], 0) (joint BatchNorm statistics), a diffFPN / thin diffFPN /
dense (UNet++-like) decoder, and a coordinate-attention head. Parameter names equal the torch
ones, so ``alignment.convert.convert_state_dict`` maps an official checkpoint without renaming
beyond BatchNorm buffers (Linear weights of the SE gates are transposed by the converter).

Forward returns the official 5-tuple: (x0_1, x0_2, x0_3, x0_3, out) for diffFPN and denseFPN,
(x0_1, x0_2, x0_2, x0_2, out) for thin_diffFPN; ``out`` (B, num_classes, H, W) are the logits.
Inputs are raw 0-255 pixel values; H and W must be multiples of 8.

Args of ``build_model("lsnet", ...)``:
    variant (str): "diffFPN" (default), "thin_diffFPN" or "denseFPN".
    in_channels (int): channels of each input image. Default 3.
    num_classes (int): output classes. Default 2.
    mid_channels (int): FPN width at the finest level (diffFPN variants). Default 32.

Deviations from the official code: as the torch reference (two inputs instead of a pre-concatenated
batch; unused parameter-free modules left out). Paddle-specific: BatchNorm momentum 0.9 (= torch
0.1), AvgPool2D exclusive=False, a PReLU whose slope is named ``weight``; initialisation
reproduces torch's (kaiming-normal fan-out conv weights as the official, and torch's default
uniform conv biases and Linear layers, which Paddle would otherwise initialise differently).

The official behaviour this file follows (architecture, checkpoint names, official bugs and what is done
about each, recipe, reported numbers) is written up in ``docs/lsnet.md``.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import paddle
from paddle import nn

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


def split_pair(x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
    half = x.shape[0] // 2
    return x[:half], x[half:]


class LightSiameseBackbone(nn.Layer):
    """Four CG stages on the batch-concatenated pair; returns [A0, B0, A1, B1, A2, B2, A3, B3]."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.inject_2x = InputInjection(1)
        self.stem = nn.LayerList([
            ContextGuidedBlock(in_channels if i == 0 else FILTERS[0], FILTERS[0], DILATIONS[0],
                               REDUCTIONS[0], skip_connect=i != 0, downsample=False)
            for i in range(NUM_BLOCKS[0])])
        self.out_channels = backbone_channels(in_channels)
        self.norm_prelu_0 = norm_prelu(self.out_channels[0])
        self.level1 = self._stage(1)
        self.norm_prelu_1 = norm_prelu(self.out_channels[1])
        self.level2 = self._stage(2)
        self.norm_prelu_2 = norm_prelu(self.out_channels[2])
        self.level3 = self._stage(3)
        self.norm_prelu_3 = norm_prelu(self.out_channels[3])

    def _stage(self, level: int) -> nn.LayerList:
        return nn.LayerList([
            ContextGuidedBlock(self.out_channels[level - 1] if i == 0 else FILTERS[level], FILTERS[level],
                               DILATIONS[level], REDUCTIONS[level], downsample=i == 0)
            for i in range(NUM_BLOCKS[level])])

    @staticmethod
    def _run_stage(blocks: nn.LayerList, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        first = x = blocks[0](x)
        for block in blocks[1:]:
            x = block(x)
        return x, first

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        # The official names this x2-downsampled input "inp_4x": it joins level 1 (1/2 resolution).
        inp_half = self.inject_2x(x)
        stem = x
        for block in self.stem:
            stem = block(stem)
        x0 = self.norm_prelu_0(paddle.concat([stem, x], 1))  # 2b, 35, h, w
        x, first = self._run_stage(self.level1, x0)
        x1 = self.norm_prelu_1(paddle.concat([x, first, inp_half], 1))  # 2b, 131, h/2, w/2
        x, first = self._run_stage(self.level2, x1)
        x2 = self.norm_prelu_2(paddle.concat([x, first], 1))  # 2b, 256, h/4, w/4
        x, first = self._run_stage(self.level3, x2)
        x3 = self.norm_prelu_3(paddle.concat([x, first], 1))  # 2b, 512, h/8, w/8
        return [half for feat in (x0, x1, x2, x3) for half in split_pair(feat)]


class DiffFPN(nn.Layer):
    """Lateral + top-down pyramid, then nested rounds of diff CG blocks (see torch_ref/lsnet.py).

    ``rounds`` lists how many levels each nested round covers: (3, 2) for diffFPN, (2,) for the
    thin variant. Returns the first map of every round and the final block's output.
    """

    def __init__(self, in_channels: Sequence[int], mid_channels: int, rounds: Sequence[int]) -> None:
        super().__init__()
        self.rounds = tuple(rounds)
        width = [mid_channels * 2 ** i for i in range(4)]
        self.lateral_convs = nn.LayerList([
            cgblock(2 * in_channels[i], width[i], DILATIONS[i], REDUCTIONS[i]) for i in range(4)])
        self.top_down_convs = nn.LayerList([
            cgblock(width[i], width[i - 1], DILATIONS[i], REDUCTIONS[i]) for i in range(3, 0, -1)])
        self.diff_convs = nn.LayerList([
            cgblock(3 * width[i], width[i], DILATIONS[i], REDUCTIONS[i])
            for levels in self.rounds for i in range(levels)])
        self.diff_convs.append(cgblock(3 * width[0], width[1], DILATIONS[0], REDUCTIONS[0]))
        self.up2x = UpBilinear2x()

    def forward(self, feats: Sequence[paddle.Tensor]) -> Tuple[paddle.Tensor, ...]:
        tmp = [conv(paddle.concat([feats[2 * i], feats[2 * i + 1]], 1))
               for i, conv in enumerate(self.lateral_convs)]
        for i in range(3, 0, -1):
            tmp[i - 1] = tmp[i - 1] + self.up2x(self.top_down_convs[3 - i](tmp[i]))
        outputs = []
        start = 0
        for levels in self.rounds:
            tmp = [self.diff_convs[start + i](paddle.concat([tmp[i], self.up2x(tmp[i + 1])], 1))
                   for i in range(levels)]
            outputs.append(tmp[0])
            start += levels
        outputs.append(self.diff_convs[start](paddle.concat([tmp[0], self.up2x(tmp[1])], 1)))
        return tuple(outputs)


class DenseFPN(nn.Layer):
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

    def forward(self, feats: Sequence[paddle.Tensor]) -> Tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        a0, b0, a1, b1, a2, b2, a3, b3 = feats
        up = self.up2x
        x0_1 = self.conv0_1(paddle.concat([a0, b0, up(a1), up(b1)], 1))
        x1_1 = self.conv1_1(paddle.concat([a1, b1, up(a2), up(b2)], 1))
        x2_1 = self.conv2_1(paddle.concat([a2, b2, up(a3), up(b3)], 1))
        x0_2 = self.conv0_2(paddle.concat([a0, b0, x0_1, up(x1_1)], 1))
        x1_2 = self.conv1_2(paddle.concat([a1, b1, x1_1, up(x2_1)], 1))
        x0_3 = self.conv0_3(paddle.concat([a0, b0, x0_1, x0_2, up(x1_2)], 1))
        return x0_1, x0_2, x0_3


class CamHead(nn.Layer):
    """Coordinate attention over the concatenated FPN outputs, then 1x1 conv to the logits."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.ca = CoordAtt(in_channels, in_channels, groups=16)
        self.conv_final = nn.Conv2D(in_channels, num_classes, 1)

    def forward(self, *maps: paddle.Tensor) -> paddle.Tensor:
        return self.conv_final(self.ca(paddle.concat(maps, 1)))


class LSNet(nn.Layer):
    """LSNet with one of the three official decoders; see the module docstring."""

    size_divisor = 8  # input H, W: three stride-2 stages (rsrepro.lsnet.check_pair)

    def __init__(self, variant: str = "diffFPN", in_channels: int = 3, num_classes: int = 2,
                 mid_channels: int = 32) -> None:
        super().__init__()
        self.variant = check_variant(variant)
        self.backbone = LightSiameseBackbone(in_channels)
        self.head = CamHead(head_channels(variant, mid_channels), num_classes)
        if variant == "denseFPN":
            self.FPN = DenseFPN(self.backbone.out_channels)
        else:
            self.FPN = DiffFPN(self.backbone.out_channels, mid_channels, DIFF_ROUNDS[variant])
        self._init_weights()

    def _init_weights(self) -> None:
        # The official re-initialises conv weights (kaiming normal, fan_out) and BN affine (1, 0)
        # and leaves torch's defaults elsewhere; those defaults are reproduced for conv biases
        # and Linear layers: U(+-1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5) for weights).
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                out_ch, in_per_group, kh, kw = layer.weight.shape
                nn.initializer.KaimingNormal(fan_in=out_ch * kh * kw, nonlinearity="relu")(layer.weight)
                if layer.bias is not None:
                    bound = 1.0 / math.sqrt(in_per_group * kh * kw)
                    nn.initializer.Uniform(-bound, bound)(layer.bias)
            elif isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.weight.shape[0])  # Paddle Linear weight: [in, out]
                nn.initializer.Uniform(-bound, bound)(layer.weight)
                nn.initializer.Uniform(-bound, bound)(layer.bias)
            elif isinstance(layer, (nn.BatchNorm2D, nn.GroupNorm)):
                nn.initializer.Constant(1.0)(layer.weight)
                nn.initializer.Constant(0.0)(layer.bias)

    def forward(self, t0: paddle.Tensor, t1: paddle.Tensor) -> Tuple[paddle.Tensor, ...]:
        if paddle.in_dynamic_mode():  # traced (export) shapes hold -1 for dynamic axes
            check_pair(t0.shape, t1.shape)
        feats = self.backbone(paddle.concat([t0, t1], 0))
        maps = self.FPN(feats)
        out = self.head(*maps)
        if len(maps) == 2:  # thin_diffFPN
            return maps[0], maps[1], maps[1], maps[1], out
        return maps[0], maps[1], maps[2], maps[2], out



@MODELS.register("lsnet")
def lsnet(variant: str = "diffFPN", in_channels: int = 3, num_classes: int = 2,
          mid_channels: int = 32) -> LSNet:
    return LSNet(variant, in_channels, num_classes, mid_channels)
