"""DANet: Dual Attention Network for Scene Segmentation — PyTorch reference.

Paper: Jun Fu, Jing Liu, Haijie Tian, Yong Li, Yongjun Bao, Zhiwei Fang, Hanqing Lu,
"Dual Attention Network for Scene Segmentation", CVPR 2019, https://arxiv.org/abs/1809.02983.
Official code: https://github.com/junfu1115/DANet (2019 tree, commit c7a2f60; ``encoding/models/danet.py``).

Behaves like the official model: dilated ResNet backbone (``pretrained.*``), ``DANetHead``
(``head.*``) with PAM (``sa``) and CAM (``sc``), three logits ``(fused, pam, cam)`` upsampled
bilinearly with align_corners=True. State-dict keys equal the official ones, so an official
``.pth.tar`` loads with ``strict=True``.

Args of ``build_model("danet", ...)``:
    backbone (str): "resnet50" or "resnet101". Default "resnet50".
    num_classes (int): output classes. Default 19 (Cityscapes).
    multi_grid (bool): multi-grid dilations in layer4 (the released DANet101). Default False.
    multi_dilation (tuple of int): layer4 dilations used with multi_grid. Default (4, 8, 16).
    deep_stem (bool): the 2020 tree's 3x3x3 stem. Default False (the 2019 7x7 stem).
    pam_query_chunk (int or None): compute PAM this many query rows at a time (exact, bounds inference
        memory on large inputs; ``layers.attention``). Default None (one N x N product, official).

Deviations from the official code: none by default. ``deep_stem`` is an option (the 2020 tree's
default, which the released checkpoints do not use).

The official behaviour this file follows (architecture, checkpoint names, official bugs and what is done
about each, recipe, reported numbers) is written up in ``docs/danet.md``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from .backbones import build_resnet
from .layers import CAM_Module, PAM_Module, resize
from .layers.attention import set_pam_query_chunk
from .registry import MODELS


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def dropout_classifier(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(0.1, False), nn.Conv2d(in_channels, out_channels, 1))


class DANetHead(nn.Module):
    """Two attention branches on the c4 feature map; returns (fused, pam, cam) logits.

    ``use_pam`` / ``use_cam`` = False put an identity where the attention module was (the DASNet-V2
    ablation): the branch keeps its convolutions and every other state-dict key.
    """

    def __init__(self, in_channels: int, out_channels: int, use_pam: bool = True,
                 use_cam: bool = True) -> None:
        super().__init__()
        inter_channels = in_channels // 4
        self.conv5a = conv_bn_relu(in_channels, inter_channels)
        self.conv5c = conv_bn_relu(in_channels, inter_channels)
        self.sa = PAM_Module(inter_channels) if use_pam else nn.Identity()
        self.sc = CAM_Module(inter_channels) if use_cam else nn.Identity()
        self.conv51 = conv_bn_relu(inter_channels, inter_channels)
        self.conv52 = conv_bn_relu(inter_channels, inter_channels)
        self.conv6 = dropout_classifier(inter_channels, out_channels)
        self.conv7 = dropout_classifier(inter_channels, out_channels)
        self.conv8 = dropout_classifier(inter_channels, out_channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sa_conv = self.conv51(self.sa(self.conv5a(x)))
        sc_conv = self.conv52(self.sc(self.conv5c(x)))
        fused = self.conv8(sa_conv + sc_conv)
        return fused, self.conv6(sa_conv), self.conv7(sc_conv)


class DANet(nn.Module):
    """Dilated ResNet (output stride 8) + DANet head; logits at the input resolution."""

    def __init__(self, num_classes: int = 19, backbone: str = "resnet50", multi_grid: bool = False,
                 multi_dilation: Sequence[int] = (4, 8, 16), deep_stem: bool = False,
                 use_pam: bool = True, use_cam: bool = True) -> None:
        super().__init__()
        self.pretrained = build_resnet(backbone, dilated=True, multi_grid=multi_grid,
                                       multi_dilation=tuple(multi_dilation), deep_stem=deep_stem)
        self.head = DANetHead(2048, num_classes, use_pam, use_cam)

    def head_outputs(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fused, pam, cam) at 1/8 of the input size (DASNet uses them as embeddings)."""
        return self.head(self.pretrained(x)[3])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x.shape[2:]
        return tuple(resize.bilinear(o, size) for o in self.head_outputs(x))


@MODELS.register("danet")
def danet(backbone: str = "resnet50", num_classes: int = 19, multi_grid: bool = False,
          multi_dilation: Sequence[int] = (4, 8, 16), deep_stem: bool = False,
          pam_query_chunk: int | None = None) -> DANet:
    model = DANet(num_classes, backbone, multi_grid, multi_dilation, deep_stem)
    set_pam_query_chunk(model, pam_query_chunk)
    return model
