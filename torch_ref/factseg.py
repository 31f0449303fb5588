"""FactSeg: foreground-activation-driven small object segmentation — PyTorch reference.

Paper: Ailong Ma, Junjue Wang, Yanfei Zhong, Zhuo Zheng, "FactSeg: Foreground Activation-Driven Small
Object Semantic Segmentation in Large-Scale Remote Sensing Imagery", IEEE TGRS 60, 2022,
https://doi.org/10.1109/TGRS.2021.3097148.
Official code: https://github.com/Junjue-Wang/FactSeg (``module/factseg.py``, ``module/semantic_fpn.py``,
``configs/isaid/factseg.py``) on SimpleCV (https://github.com/Z-Zheng/SimpleCV, ``module/resnet.py``,
``module/fpn.py``).

Behaves like the official model: torchvision ResNet-50 encoder ``resencoder.resnet`` (output stride 32,
classifier removed), two FPNs ``fgfpn`` / ``bifpn``, two AssymetricDecoders ``fg_decoder`` /
``bi_decoder``, heads ``fg_cls`` (num_classes) and ``bi_cls`` (1), both logits upsampled x4 bilinearly
(align_corners=True). State-dict keys and shapes equal the official ones (33,446,609 parameters for 16
classes), so an official checkpoint (``['model']``, ``module.`` prefix stripped) loads with strict=True,
and a torchvision ResNet-50 file initialises the encoder (``rsrepro.factseg.torchvision_to_factseg``).

Outputs (``output``):
    "auto" (default): train mode -> ``(fg_logits, bi_logits)`` (what ``build_loss("factseg_joint")``
    takes); eval mode -> fused class probabilities ``(B, num_classes, H, W)``:
    ``p_0 = softmax_0 * (1 - sigmoid(bi))``, ``p_c = softmax_c * sigmoid(bi)`` (c >= 1), divided by their
    sum over the classes. "logits" / "probability": always that output. "all": always
    ``(fg_logits, bi_logits, probability)`` (the alignment cases compare everything in one pass; the
    loss ignores the third element).

Args of ``build_model("factseg", ...)``:
    num_classes (int): classes including background. Default 16 (iSAID).
    backbone (str): "resnet50" (official) or "resnet101". Default "resnet50".
    output (str): see above. Default "auto".

Deviations from the official code:
- the eval-mode fusion divides by the class sum with the class axis kept; the official
  ``cls_prob.div_(Z)`` broadcasts a (B, H, W) sum against (B, C, H, W), which raises for 1 < B != C and
  silently divides by the wrong image's sums when B == C (16). Batch 1 is identical.
- the training loss lives outside the model (``torch_ref/losses/factseg_joint.py``); the official
  ``forward(x, y)`` computes it inside in train mode. The dead options ``fbattention`` (blocks never
  built) and the OHEM sampler (undefined function) are not offered.
- inputs whose sides are not multiples of 32 raise a ValueError naming the rule (official: a shape
  mismatch deep inside the FPN).

The official behaviour this file follows (architecture, checkpoint names, official bugs and what is done
about each, recipe, reported numbers) is written up in ``docs/factseg.md``.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

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
from .layers.factseg_blocks import FPN, AssymetricDecoder
from .registry import MODELS

OUTPUTS = ("auto", "logits", "probability", "all")


class ResNetEncoder(nn.Module):
    """SimpleCV's ``ResNetEncoder`` as configured for FactSeg: returns (c2, c3, c4, c5)."""

    def __init__(self, backbone: str = "resnet50") -> None:
        super().__init__()
        self.resnet = build_resnet(backbone, dilated=False)
        # The official encoder pops the ImageNet classifier; its keys are absent from the checkpoints.
        del self.resnet.fc
        del self.resnet.avgpool

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.resnet(x)


def fused_probability(fg_logits: torch.Tensor, bi_logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities with the binary foreground probability folded in (official inference)."""
    cls_prob = torch.softmax(fg_logits, dim=1)  # b, c, h, w
    fg_prob = torch.sigmoid(bi_logits)  # b, 1, h, w
    joint = torch.cat([cls_prob[:, :1] * (1 - fg_prob), cls_prob[:, 1:] * fg_prob], dim=1)
    return joint / joint.sum(dim=1, keepdim=True)


class FactSeg(nn.Module):
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
        self.fg_cls = nn.Conv2d(DECODER_OUT_CHANNELS, num_classes, 1)
        self.bi_cls = nn.Conv2d(DECODER_OUT_CHANNELS, 1, 1)

    def logits(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(fg_logits (B, num_classes, H, W), bi_logits (B, 1, H, W)) at the input size."""
        check_input_size(int(x.shape[2]), int(x.shape[3]))
        feats = self.resencoder(x)
        fg = self.fg_cls(self.fg_decoder(self.fgfpn(feats)))  # b, k, h/4, w/4
        bi = self.bi_cls(self.bi_decoder(self.bifpn(feats)))  # b, 1, h/4, w/4
        size = (4 * fg.shape[2], 4 * fg.shape[3])
        return resize.bilinear(fg, size), resize.bilinear(bi, size)

    def forward(self, x: torch.Tensor):
        fg, bi = self.logits(x)
        mode = self.output if self.output != "auto" else ("logits" if self.training else "probability")
        if mode == "logits":
            return fg, bi
        prob = fused_probability(fg, bi)
        return (fg, bi, prob) if mode == "all" else prob


@MODELS.register("factseg")
def factseg(num_classes: int = 16, backbone: str = "resnet50", output: str = "auto") -> FactSeg:
    return FactSeg(num_classes, backbone, output)
