"""Framework-free ResNet layout rules shared by both trees (depths, dilations, strides)."""

from __future__ import annotations

from typing import List, Sequence, Tuple

RESNET_DEPTHS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


def resnet_depths(name: str) -> Tuple[int, int, int, int]:
    if name not in RESNET_DEPTHS:
        raise ValueError(f"unknown backbone '{name}'; expected one of {sorted(RESNET_DEPTHS)}")
    return RESNET_DEPTHS[name]


def layer_dilations(
    num_blocks: int,
    dilation: int,
    multi_grid: bool = False,
    multi_dilation: Sequence[int] = (4, 8, 16),
) -> List[int]:
    """Per-block dilation of one ResNet stage, following the official DANet (encoding) rule.

    A dilated stage does not dilate its first block as much as the rest: dilation 1 or 2 -> the
    first block uses 1, dilation 4 -> the first block uses 2; the remaining blocks use ``dilation``.
    With ``multi_grid`` (layer4 only) block ``i`` uses ``multi_dilation[i % len(multi_dilation)]``.
    """
    if multi_grid:
        if not multi_dilation:
            raise ValueError("multi_grid needs a non-empty multi_dilation")
        return [int(multi_dilation[i % len(multi_dilation)]) for i in range(num_blocks)]
    first = {1: 1, 2: 1, 4: 2}.get(dilation)
    if first is None:
        raise ValueError(f"dilation must be 1, 2 or 4, got {dilation}")
    return [first] + [dilation] * (num_blocks - 1)


def stage_plan(dilated: bool) -> List[Tuple[int, int]]:
    """(stride, dilation) of layer1..layer4: output stride 8 when dilated, 32 otherwise."""
    if dilated:
        return [(1, 1), (2, 1), (1, 2), (1, 4)]
    return [(1, 1), (2, 1), (2, 1), (2, 1)]
