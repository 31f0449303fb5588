"""ResNet-50/101 in the torchvision layout, optionally dilated to output stride 8 (Paddle twin).

Mirrors ``torch_ref/backbones/resnet.py`` class for class and name for name, so converted
official / torchvision checkpoints load without renaming beyond the BatchNorm buffers
(``running_mean`` -> ``_mean``, ``running_var`` -> ``_variance``) and the transposed ``fc`` weight.

Deviations from the official code: none in the default configuration; ``deep_stem`` as on the
torch side. BatchNorm momentum 0.9 here is torch's 0.1.
"""

from __future__ import annotations

import math
from typing import List, Sequence

import paddle
from paddle import nn

from rsrepro.resnet_rules import layer_dilations, resnet_depths, stage_plan


def batch_norm(channels: int) -> nn.BatchNorm2D:
    # Paddle momentum is 1 - torch momentum: 0.9 here == torch's default 0.1.
    return nn.BatchNorm2D(channels, momentum=0.9, epsilon=1e-5)


class Bottleneck(nn.Layer):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Layer | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(inplanes, planes, 1, bias_attr=False)
        self.bn1 = batch_norm(planes)
        self.conv2 = nn.Conv2D(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias_attr=False)
        self.bn2 = batch_norm(planes)
        self.conv3 = nn.Conv2D(planes, planes * 4, 1, bias_attr=False)
        self.bn3 = batch_norm(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet(nn.Layer):
    """Bottleneck ResNet. ``forward`` returns the four stage outputs (c1, c2, c3, c4)."""

    def __init__(self, depths: Sequence[int], dilated: bool = True, multi_grid: bool = False,
                 multi_dilation: Sequence[int] = (4, 8, 16), deep_stem: bool = False,
                 num_classes: int = 1000) -> None:
        super().__init__()
        if deep_stem:
            self.conv1 = nn.Sequential(
                nn.Conv2D(3, 64, 3, stride=2, padding=1, bias_attr=False), batch_norm(64),
                nn.ReLU(),
                nn.Conv2D(64, 64, 3, stride=1, padding=1, bias_attr=False), batch_norm(64),
                nn.ReLU(),
                nn.Conv2D(64, 128, 3, stride=1, padding=1, bias_attr=False),
            )
            self.inplanes = 128
        else:
            self.conv1 = nn.Conv2D(3, 64, 7, stride=2, padding=3, bias_attr=False)
            self.inplanes = 64
        self.bn1 = batch_norm(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(3, stride=2, padding=1)
        plan = stage_plan(dilated)
        self.layer1 = self._make_layer(64, depths[0], *plan[0])
        self.layer2 = self._make_layer(128, depths[1], *plan[1])
        self.layer3 = self._make_layer(256, depths[2], *plan[2])
        self.layer4 = self._make_layer(512, depths[3], *plan[3], multi_grid=multi_grid,
                                       multi_dilation=multi_dilation)
        # Unused by the segmentation models; kept so official/torchvision checkpoints load strictly.
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(512 * 4, num_classes)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int, dilation: int,
                    multi_grid: bool = False, multi_dilation: Sequence[int] = (4, 8, 16)):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2D(self.inplanes, planes * 4, 1, stride=stride, bias_attr=False),
                batch_norm(planes * 4),
            )
        dilations = layer_dilations(blocks, dilation, multi_grid, multi_dilation)
        layers = [Bottleneck(self.inplanes, planes, stride, dilations[0], downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, 1, d) for d in dilations[1:]]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        # As the official backbone: He-normal (fan_out) convs, BN weight 1 / bias 0.
        for m in self.sublayers():
            if isinstance(m, nn.Conv2D):
                n = m._kernel_size[0] * m._kernel_size[1] * m._out_channels
                m.weight.set_value(
                    paddle.normal(0.0, math.sqrt(2.0 / n), m.weight.shape).astype(m.weight.dtype))
            elif isinstance(m, nn.BatchNorm2D):
                m.weight.set_value(paddle.ones_like(m.weight))
                m.bias.set_value(paddle.zeros_like(m.bias))

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [c1, c2, c3, c4]


def build_resnet(name: str = "resnet50", **kwargs) -> ResNet:
    return ResNet(resnet_depths(name), **kwargs)
