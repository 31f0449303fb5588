from rsrepro.resnet_rules import layer_dilations

from .resnet import Bottleneck, ResNet, build_resnet

__all__ = ["Bottleneck", "ResNet", "build_resnet", "layer_dilations"]
