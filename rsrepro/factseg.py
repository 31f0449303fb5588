"""Framework-free FactSeg facts shared by both trees: the official layout and the checkpoint filter.

Official configuration for iSAID (Junjue-Wang/FactSeg ``configs/isaid/factseg.py``; see
docs/factseg.md): ResNet-50 encoder (``resencoder.resnet``, torchvision layout, output
stride 32), two FPNs with inputs (256, 512, 1024, 2048) -> 256, two AssymetricDecoders 256 -> 128 for
input strides (4, 8, 16, 32) and output stride 4, heads 128 -> num_classes and 128 -> 1, x4 upsampling.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Tuple

__all__ = [
    "FPN_IN_CHANNELS",
    "FPN_OUT_CHANNELS",
    "DECODER_OUT_CHANNELS",
    "IN_FEAT_STRIDES",
    "OUT_FEAT_STRIDE",
    "SIZE_DIVISOR",
    "ENCODER_PREFIX",
    "decoder_plan",
    "check_input_size",
    "torchvision_to_factseg",
]

FPN_IN_CHANNELS: Tuple[int, ...] = (256, 512, 1024, 2048)
FPN_OUT_CHANNELS = 256
DECODER_OUT_CHANNELS = 128
IN_FEAT_STRIDES: Tuple[int, ...] = (4, 8, 16, 32)
OUT_FEAT_STRIDE = 4
# The FPN's nearest x2 top-down path and the x4 head upsampling only line up with the input when both
# sides are multiples of the encoder's output stride (the official code raises a shape error otherwise;
# its evaluation pads every window to a multiple of 32).
SIZE_DIVISOR = 32
ENCODER_PREFIX = "resencoder.resnet."


def decoder_plan(in_stride: int, out_stride: int = OUT_FEAT_STRIDE) -> Tuple[int, bool]:
    """(number of conv layers, whether each layer upsamples x2) of one AssymetricDecoder scale.

    Official rule: ``num_upsample = log2(in_stride) - log2(out_stride)``; the scale has
    ``max(1, num_upsample)`` layers, each Conv3x3-BN-ReLU followed by a bilinear x2 upsampling
    (align_corners=True) unless ``num_upsample == 0``. Strides (4, 8, 16, 32) -> layers (1, 1, 2, 3).
    """
    if in_stride <= 0 or out_stride <= 0 or in_stride < out_stride:
        raise ValueError(f"decoder strides must be positive with in >= out, got {in_stride} -> {out_stride}")
    num_upsample = int(math.log2(int(in_stride))) - int(math.log2(int(out_stride)))
    return max(1, num_upsample), num_upsample != 0


def check_input_size(height: Any, width: Any) -> None:
    """Raise a clear error for an input the FPN cannot align (dynamic sizes, -1 / None, are skipped)."""
    sizes = [s for s in (height, width) if isinstance(s, int) and s > 0]
    bad = [s for s in sizes if s % SIZE_DIVISOR]
    if bad:
        raise ValueError(
            f"FactSeg input height and width must be multiples of {SIZE_DIVISOR} (got {height}x{width}): the "
            f"FPN upsamples x2 from stride 32 and the heads x4 from stride 4. Pad the input first, as the "
            f"official evaluation does (zero padding after normalisation, see paddle_models/engine/factseg_eval.py)"
        )


def torchvision_to_factseg(state_dict: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """Map a torchvision ResNet-50 state dict (``conv1.weight``, ``layer1.0...``) onto FactSeg's encoder.

    Returns ``(mapped, dropped)``: ``mapped`` has every backbone key under ``resencoder.resnet.``; the
    classifier (``fc.*``), which the official ``ResNetEncoder`` removes, is dropped and listed. A state dict
    already in FactSeg naming is returned unchanged. Any other key is an error naming it.
    """
    if any(k.startswith(ENCODER_PREFIX) for k in state_dict):
        return dict(state_dict), []
    mapped: Dict[str, Any] = {}
    dropped: List[str] = []
    unknown: List[str] = []
    for key, value in state_dict.items():
        if key.startswith("fc."):
            dropped.append(key)
        elif key.split(".", 1)[0] in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"):
            mapped[ENCODER_PREFIX + key] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f"not a torchvision ResNet state dict: unexpected keys {unknown[:10]}"
                       + (" ..." if len(unknown) > 10 else ""))
    return mapped, dropped
