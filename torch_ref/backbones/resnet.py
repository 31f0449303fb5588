"""ResNet-50/101 in the torchvision layout, optionally dilated to output stride 8.

Follows the backbone of the official DANet code (junfu1115/DANet, 2019 tree, ``encoding.dilated``):
torchvision module names (``conv1``, ``bn1``, ``layer1..4``, ``fc``), stride on the 3x3 conv, the
per-block dilation rule of ``rsrepro.resnet_rules.layer_dilations`` and multi-grid for layer4.
With ``dilated=False`` it is torchvision's ResNet-50 (the FactSeg encoder).

Deviations from the official code: none in the default configuration. ``deep_stem=True`` is the
2020 tree's stem (three 3x3 convs 3->64->64->128), offered as an option.
"""

from __future__ import annotations

import math
from typing import List, Sequence

import torch
from torch import nn

from rsrepro.resnet_rules import layer_dilations, resnet_depths, stage_plan


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet(nn.Module):
    """Bottleneck ResNet. ``forward`` returns the four stage outputs (c1, c2, c3, c4)."""

    def __init__(self, depths: Sequence[int], dilated: bool = True, multi_grid: bool = False,
                 multi_dilation: Sequence[int] = (4, 8, 16), deep_stem: bool = False,
                 num_classes: int = 1000) -> None:
        super().__init__()
        if deep_stem:
            self.conv1 = nn.Sequential(
                nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.Conv2d(64, 64, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.Conv2d(64, 128, 3, stride=1, padding=1, bias=False),
            )
            self.inplanes = 128
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.inplanes = 64
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        plan = stage_plan(dilated)
        self.layer1 = self._make_layer(64, depths[0], *plan[0])
        self.layer2 = self._make_layer(128, depths[1], *plan[1])
        self.layer3 = self._make_layer(256, depths[2], *plan[2])
        self.layer4 = self._make_layer(512, depths[3], *plan[3], multi_grid=multi_grid,
                                       multi_dilation=multi_dilation)
        # Unused by the segmentation models; kept so official/torchvision checkpoints load strictly.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * 4, num_classes)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int, dilation: int,
                    multi_grid: bool = False, multi_dilation: Sequence[int] = (4, 8, 16)):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        dilations = layer_dilations(blocks, dilation, multi_grid, multi_dilation)
        layers = [Bottleneck(self.inplanes, planes, stride, dilations[0], downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, 1, d) for d in dilations[1:]]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # As the official backbone: He-normal (fan_out) convs, BN weight 1 / bias 0.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]


def build_resnet(name: str = "resnet50", **kwargs) -> ResNet:
    return ResNet(resnet_depths(name), **kwargs)
