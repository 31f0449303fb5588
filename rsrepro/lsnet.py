"""Framework-free LSNet pieces: hyper-parameters and input checks shared by the two ``lsnet.py``
model files, and the Dice-mode / label checks of the two ``losses/lsnet_hybrid.py``.

Values from the official ``models/Models.py`` (github qaz670756/LSNet); the spec is
``docs/lsnet.md``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

FILTERS = (32, 64, 128, 256)  # CG-block width per backbone stage
NUM_BLOCKS = (3, 3, 8, 12)
DILATIONS = (1, 2, 4, 8)  # surrounding-context dilation per level (backbone and decoders)
REDUCTIONS = (4, 8, 16, 32)  # SE reduction per level
VARIANTS = ("diffFPN", "thin_diffFPN", "denseFPN")
# nested diff rounds of the diffFPN decoders: how many pyramid levels each round covers
DIFF_ROUNDS = {"diffFPN": (3, 2), "thin_diffFPN": (2,)}


def backbone_channels(in_channels: int) -> Tuple[int, int, int, int]:
    """Channels of the four backbone outputs (per date): 35, 131, 256, 512 for RGB."""
    return (FILTERS[0] + in_channels, 2 * FILTERS[1] + in_channels, 2 * FILTERS[2], 2 * FILTERS[3])


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"lsnet: unknown variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    return variant


def head_channels(variant: str, mid_channels: int) -> int:
    """Channels of the concatenated decoder outputs the head sees (128 / 96 / 96)."""
    if variant == "denseFPN":
        return 3 * FILTERS[0]
    return 3 * mid_channels if variant == "thin_diffFPN" else 4 * mid_channels


def check_pair(t0_shape: Sequence[int], t1_shape: Sequence[int]) -> None:
    """Both dates must be (B, C, H, W) of one shape with H, W multiples of 8 (three stride-2 stages)."""
    t0_shape, t1_shape = tuple(t0_shape), tuple(t1_shape)
    if t0_shape != t1_shape or len(t0_shape) != 4:
        raise ValueError(f"lsnet: t0 and t1 must be two (B, C, H, W) tensors of the same shape, "
                         f"got {t0_shape} and {t1_shape}")
    if t0_shape[2] % 8 or t0_shape[3] % 8:
        raise ValueError(f"lsnet: H and W must be multiples of 8 (three stride-2 stages), got {t0_shape[2:]}")


# Which axes of the (B, C, H, W) probability / one-hot tensors the Dice sums over.
# "official": the official dice_loss with (B, H, W) targets sums over (batch, H) only, leaving one
# Dice per (class, image column); "standard": over (batch, H, W), one Dice per class.
_DICE_DIMS = {"official": (0, 2), "standard": (0, 2, 3)}
DICE_MODES = tuple(_DICE_DIMS)


def check_dice_mode(mode: str) -> str:
    if mode not in _DICE_DIMS:
        raise ValueError(f"lsnet_hybrid: dice must be one of {', '.join(DICE_MODES)}, got '{mode}'")
    return mode


def dice_sum_dims(mode: str) -> Tuple[int, ...]:
    return _DICE_DIMS[check_dice_mode(mode)]


def check_shapes(logits_shape: Sequence[int], labels_shape: Sequence[int]) -> None:
    logits_shape, labels_shape = tuple(logits_shape), tuple(labels_shape)
    if len(logits_shape) != 4 or logits_shape[1] < 2:
        raise ValueError(f"lsnet_hybrid: logits must be (B, C>=2, H, W), got {logits_shape}")
    expected = (logits_shape[0],) + logits_shape[2:]
    if labels_shape != expected:
        raise ValueError(f"lsnet_hybrid: labels must be (B, H, W) = {expected} for logits "
                         f"{logits_shape}, got {labels_shape}")


def check_label_range(low: int, high: int, num_classes: int) -> None:
    if low < 0 or high >= num_classes:
        raise ValueError(f"lsnet_hybrid: labels must lie in [0, {num_classes - 1}] (no ignore index in "
                         f"LSNet's loss), got values from {low} to {high}")
