"""DASNet: dual attentive fully convolutional siamese network for change detection — PyTorch reference.

Paper: Jie Chen, Ziyang Yuan, Jian Peng, Li Chen, Haozhe Huang, Jiawei Zhu, Yu Liu, Haifeng Li,
"DASNet: Dual Attentive Fully Convolutional Siamese Networks for Change Detection in High-Resolution
Satellite Images", IEEE JSTARS vol. 14 (2021; online 2020), https://arxiv.org/abs/2003.03608.
Official code: https://github.com/lehaifeng/DASNet (``model/siameseNet/dares.py``, ``SiameseNet``;
2020 tree commit bb31356).

One module ``CNN`` = DANet(num_classes=512, dilated ResNet-50) WITHOUT the final upsampling is applied
to t0 and to t1 (shared weights; two calls, so in train mode BatchNorm uses each time's own batch
statistics). Its three head outputs, sa = conv6 (PAM branch), ca = conv7 (CAM branch) and saca = conv8
(their sum), stay at 1/8 of the input size and are L2-normalised over channels. ``forward(t0, t1)``
returns ``([sa_t0, sa_t1], [ca_t0, ca_t1], [saca_t0, saca_t1])``, each (B, 512, H/8, W/8), as the
official code. State-dict keys equal the official ones (``CNN.pretrained.*``, ``CNN.head.*``).

Change score (evaluation): :func:`change_distance`, the per-pixel L2 distance of the saca pair resized
to the label size (bilinear, align_corners=True).

Args of ``build_model("dasnet", ...)``:
    backbone (str): "resnet50" (official) or "resnet101". Default "resnet50".

Deviations from the official code: none in the model. The official validation reshapes with
``view(c, h*w)`` and so only works with batch size 1; :func:`change_distance` takes any batch. The
VGG16 (DeepLab-v2) variant of the official repository is not reproduced.

The official behaviour this file follows (architecture, checkpoint names, official bugs and what is done
about each, recipe, reported numbers) is written up in ``docs/dasnet.md``.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from .danet import DANet
from .layers import resize
from .layers.normalize import l2_normalize
from .registry import MODELS

EMBEDDING_CHANNELS = 512
Pair = List[torch.Tensor]


def change_distance(outputs: Sequence[Pair], size: Sequence[int] | None = None, index: int = 2,
                    eps: float = 1e-6) -> torch.Tensor:
    """Per-pixel change score (B, H, W): the L2 distance of the ``index`` pair (2 = saca).

    ``||x0 - x1 + eps||_2`` over channels, i.e. ``F.pairwise_distance`` (default eps 1e-6), which the
    official validation uses; ``eps=0`` gives the plain distance. Resized to ``size`` bilinearly with
    align_corners=True when it differs (official: always to 256x256). Range [0, 2] up to eps.
    """
    x0, x1 = outputs[index]
    distance = torch.sqrt(((x0 - x1 + eps) ** 2).sum(dim=1, keepdim=True))  # b, 1, h, w
    if size is not None and tuple(distance.shape[-2:]) != tuple(int(s) for s in size):
        distance = resize.bilinear(distance, size)
    return distance[:, 0]


def check_same_shape(t0: torch.Tensor, t1: torch.Tensor) -> None:
    if list(t0.shape) != list(t1.shape):
        raise ValueError(f"DASNet: t0 and t1 must have the same shape, got {list(t0.shape)} and {list(t1.shape)}")


class DASNet(nn.Module):
    """Siamese DANet embedding network (see the module docstring).

    ``use_pam`` / ``use_cam`` = False replace the attention module by an identity (used by the
    DASNet-V2 ablation in ``dasnet_v2.py``).
    """

    def __init__(self, backbone: str = "resnet50", use_pam: bool = True, use_cam: bool = True) -> None:
        super().__init__()
        self.CNN = DANet(num_classes=EMBEDDING_CHANNELS, backbone=backbone, use_pam=use_pam,
                         use_cam=use_cam)

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sa, ca, saca) embeddings of one time, not normalised, at 1/8 of the input size."""
        fused, sa, ca = self.CNN.head_outputs(x)
        return sa, ca, fused

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, t0: torch.Tensor, t1: torch.Tensor) -> Tuple[Pair, Pair, Pair]:
        check_same_shape(t0, t1)
        e0, e1 = self.embed(t0), self.embed(t1)
        pairs = []
        # Decoded (V2) in the official order sa_t0, sa_t1, ca_t0, ... (it sets BN's running statistics).
        for a, b in zip(e0, e1):
            pairs.append([l2_normalize(self.decode(a)), l2_normalize(self.decode(b))])
        return pairs[0], pairs[1], pairs[2]


@MODELS.register("dasnet")
def dasnet(backbone: str = "resnet50") -> DASNet:
    return DASNet(backbone)
