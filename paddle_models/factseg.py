"""FactSeg: foreground-activation-driven small object segmentation — PaddlePaddle implementation.

Paper: Ailong Ma, Junjue Wang, Yanfei Zhong, Zhuo Zheng, "FactSeg: Foreground Activation-Driven Small
Object Semantic Segmentation in Large-Scale Remote Sensing Imagery", IEEE TGRS 60, 2022,
https://doi.org/10.1109/TGRS.2021.3097148.
Official code: https://github.com/Junjue-Wang/FactSeg (``module/factseg.py``, ``module/semantic_fpn.py``,
``configs/isaid/factseg.py``) on SimpleCV (https://github.com/Z-Zheng/SimpleCV).

Mirrors ``torch_ref/factseg.py`` class for class: torchvision-layout ResNet-50 encoder
``resencoder.resnet`` (output stride 32, no classifier), FPNs ``fgfpn`` / ``bifpn``, AssymetricDecoders
``fg_decoder`` / ``bi_decoder``, heads ``fg_cls`` / ``bi_cls``, x4 bilinear upsampling
(align_corners=True, which matches torch exactly in Paddle). Converted official or torchvision weights
load without renaming beyond the BatchNorm buffers.

Outputs (``output``): "auto" (default) -> ``(fg_logits, bi_logits)`` in train mode, fused class
probabilities in eval mode; "logits" / "probability" / "all" (``(fg, bi, probability)``) force one.
The fused probability is ``softmax`` of the class logits with channel 0 scaled by ``1 - sigmoid(bi)``
and channels 1.. by ``sigmoid(bi)``, renormalised over the classes (batch-safe).

Args of ``build_model("factseg", ...)``:
    num_classes (int): classes including background. Default 16 (iSAID).
    backbone (str): "resnet50" (official) or "resnet101". Default "resnet50".
    output (str): "auto", "logits", "probability" or "all". Default "auto".

Deviations from the official code: as listed in ``torch_ref/factseg.py`` (batch-safe fusion, loss
outside the model, no dead options, a clear error for sizes not divisible by 32). Paddle specifics: the
softmax is ``exp(exact_log_softmax)`` (Paddle 3.3.1's softmax kernel clips shifted logits at -64), and
the decoder convs and heads start from torch's default initialisation (PaddleRS's FactSeg uses Paddle's
defaults and BatchNorm momentum 0.1 in Paddle terms, i.e. torch 0.9 — not copied).

The official behaviour this file follows (architecture, checkpoint names, official bugs and what is done
about each, recipe, reported numbers) is written up in ``docs/factseg.md``.
"""

from __future__ import annotations

from typing import List, Tuple

import paddle
import paddle.nn.functional as F
from paddle import nn

from rsrepro.factseg import (
    DECODER_OUT_CHANNELS,
    FPN_IN_CHANNELS,
    FPN_OUT_CHANNELS,
    IN_FEAT_STRIDES,
    OUT_FEAT_STRIDE,
    SIZE_DIVISOR,
    check_input_size,
)

from .backbones import build_resnet
from .layers import resize
from .layers.factseg_blocks import FPN, AssymetricDecoder, torch_default_init
from .losses.cross_entropy import exact_log_softmax
from .registry import MODELS

OUTPUTS = ("auto", "logits", "probability", "all")


class ResNetEncoder(nn.Layer):
    """SimpleCV's ``ResNetEncoder`` as configured for FactSeg: returns (c2, c3, c4, c5)."""

    def __init__(self, backbone: str = "resnet50") -> None:
        super().__init__()
        self.resnet = build_resnet(backbone, dilated=False)
        # The official encoder pops the ImageNet classifier; its keys are absent from the checkpoints.
        del self.resnet.fc
        del self.resnet.avgpool

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        return self.resnet(x)


def fused_probability(fg_logits: paddle.Tensor, bi_logits: paddle.Tensor) -> paddle.Tensor:
    """Class probabilities with the binary foreground probability folded in (official inference)."""
    cls_prob = paddle.exp(exact_log_softmax(fg_logits, axis=1))  # b, c, h, w
    fg_prob = F.sigmoid(bi_logits)  # b, 1, h, w
    joint = paddle.concat([cls_prob[:, :1] * (1 - fg_prob), cls_prob[:, 1:] * fg_prob], axis=1)
    return joint / joint.sum(axis=1, keepdim=True)


class FactSeg(nn.Layer):
    """ResNet encoder + foreground / binary FPN-decoder branches (module docstring)."""

    size_divisor = SIZE_DIVISOR  # input H, W: the FPN's x2 top-down path needs multiples of stride 32

    def __init__(self, num_classes: int = 16, backbone: str = "resnet50", output: str = "auto") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        self.resencoder = ResNetEncoder(backbone)
        self.fgfpn = FPN(FPN_IN_CHANNELS, FPN_OUT_CHANNELS)
        self.bifpn = FPN(FPN_IN_CHANNELS, FPN_OUT_CHANNELS)
        self.fg_decoder = AssymetricDecoder(FPN_OUT_CHANNELS, DECODER_OUT_CHANNELS, IN_FEAT_STRIDES,
                                            OUT_FEAT_STRIDE)
        self.bi_decoder = AssymetricDecoder(FPN_OUT_CHANNELS, DECODER_OUT_CHANNELS, IN_FEAT_STRIDES,
                                            OUT_FEAT_STRIDE)
        self.fg_cls = torch_default_init(nn.Conv2D(DECODER_OUT_CHANNELS, num_classes, 1))
        self.bi_cls = torch_default_init(nn.Conv2D(DECODER_OUT_CHANNELS, 1, 1))

    def logits(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """(fg_logits (B, num_classes, H, W), bi_logits (B, 1, H, W)) at the input size."""
        check_input_size(x.shape[2], x.shape[3])
        feats = self.resencoder(x)
        fg = self.fg_cls(self.fg_decoder(self.fgfpn(feats)))  # b, k, h/4, w/4
        bi = self.bi_cls(self.bi_decoder(self.bifpn(feats)))  # b, 1, h/4, w/4
        size = (4 * fg.shape[2], 4 * fg.shape[3])
        return resize.bilinear(fg, size), resize.bilinear(bi, size)

    def forward(self, x: paddle.Tensor):
        fg, bi = self.logits(x)
        mode = self.output if self.output != "auto" else ("logits" if self.training else "probability")
        if mode == "logits":
            return fg, bi
        prob = fused_probability(fg, bi)
        return (fg, bi, prob) if mode == "all" else prob


@MODELS.register("factseg")
def factseg(num_classes: int = 16, backbone: str = "resnet50", output: str = "auto") -> FactSeg:
    return FactSeg(num_classes, backbone, output)
