"""DASNet-V2: DASNet with a shared siamese decoder to full resolution — PaddlePaddle.

Code: https://github.com/silence-tang/DASNet-V2 (``model/siameseNet/dares.py``, ``SiameseNet``), an
improved fork of DASNet (Chen et al., "DASNet: Dual Attentive Fully Convolutional Siamese Networks for
Change Detection in High-Resolution Satellite Images", IEEE JSTARS 2021, arXiv 2003.03608; official
code https://github.com/lehaifeng/DASNet). No paper; the design and results are in its README.

DASNet (``dasnet.py``) plus ``decoder`` = :class:`SiameseDecoder` (512 -> 256 -> 128 ->
``decoder_channels``, x8 upsampling), shared by the three branches and both times. Each of the six
embeddings is decoded, THEN L2-normalised over channels. ``forward(t0, t1)`` returns
``([sa_t0, sa_t1], [ca_t0, ca_t1], [saca_t0, saca_t1])``, each (B, decoder_channels, H, W). Mirrors
``torch_ref/dasnet_v2.py`` name for name. Use the loss
``dasnet_contrastive`` with ``variant="weighted"`` (the V2 code's ``CLNew``) or ``"cosine"``.

Args of ``build_model("dasnet_v2", ...)``:
    backbone (str): "resnet50" (official) or "resnet101". Default "resnet50".
    decoder_channels (int): channels of the decoded embeddings. Default 32 (official).
    use_pam (bool): keep the position-attention module. Default True.
    use_cam (bool): keep the channel-attention module. Default True.

Ablation (README "EXP3": without SAM and CAM, everything else unchanged; no code was published):
``use_pam=False`` / ``use_cam=False`` put an identity where ``CNN.head.sa`` / ``CNN.head.sc`` was. The
branch keeps conv5a/conv51/conv6 (resp. conv5c/conv52/conv7), so there are still three embeddings and
three loss terms, and every other state-dict key is unchanged: a full checkpoint loads after removing
``rsrepro.dasnet.ablation_dropped_keys`` (``CNN.head.sa.*`` = 4 tensors + gamma, ``CNN.head.sc.gamma``).

Deviations from the official code: none in the model.

The official behaviour this file follows (architecture, checkpoint names, official bugs and what is done
about each, recipe, reported numbers) is written up in ``docs/dasnet.md``.
"""

from __future__ import annotations

import paddle

from .dasnet import EMBEDDING_CHANNELS, DASNet
from .layers.siamese_decoder import SiameseDecoder
from .registry import MODELS


class DASNetV2(DASNet):
    """DASNet whose embeddings go through a shared :class:`SiameseDecoder` before normalisation."""

    def __init__(self, backbone: str = "resnet50", decoder_channels: int = 32, use_pam: bool = True,
                 use_cam: bool = True) -> None:
        super().__init__(backbone, use_pam, use_cam)
        self.decoder = SiameseDecoder(EMBEDDING_CHANNELS, decoder_channels)

    def decode(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.decoder(x)  # b, decoder_channels, 8h, 8w


@MODELS.register("dasnet_v2")
def dasnet_v2(backbone: str = "resnet50", decoder_channels: int = 32, use_pam: bool = True,
              use_cam: bool = True) -> DASNetV2:
    return DASNetV2(backbone, decoder_channels, use_pam, use_cam)
