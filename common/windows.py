"""Sliding-window and multi-scale geometry of the papers' evaluation protocols (framework-free).

Everything here is integer arithmetic on sizes (numpy only for the coverage check); the evaluator
(``paddle_models/engine/evaluator.py``) applies it to tensors. A window is ``(y0, y1, x0, x1)`` in the
coordinates of the (padded) image, end exclusive.

DANet (official ``MultiEvalModule``, 2019 tree; see shared/specs/danet.md):
    - scale size: ``long = ceil(base_size * scale)``; the short side keeps the aspect ratio,
      ``int(short * long / long_side + 0.5)`` (:func:`danet_scaled_size`);
    - stride: ``int(crop * 2/3)`` with one scale, ``int(crop * 1/2)`` with several (:func:`danet_stride`);
    - if ``long <= crop`` the whole (padded-to-crop) image is one window; otherwise the image is first
      padded up to the crop on any side shorter than it, then windows start at ``i * stride`` for
      ``i < ceil((size - crop) / stride) + 1`` and are CLIPPED at the image border (the last one may
      be shorter than the crop; it is padded to the crop before the forward pass and cropped after)
      (:func:`danet_windows`).

FactSeg (``factseg_windows``; shared/specs/factseg.md): windows of the crop size at ``i * stride``;
if the last one does not reach the border an extra window is SHIFTED INWARD to end exactly at it; an
axis not longer than the crop gets one window of its own length. (The FactSeg reproduction owns the
check of this rule against SimpleCV; the function is registered under "factseg" in ``WINDOW_RULES``.)

A new rule: a function ``(height, width, crop, stride) -> list of windows`` added to ``WINDOW_RULES``.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

__all__ = [
    "Window",
    "as_pair",
    "danet_scaled_size",
    "danet_stride",
    "danet_windows",
    "factseg_windows",
    "WINDOW_RULES",
    "window_coverage",
    "DANET_MS_SCALES",
]

Window = Tuple[int, int, int, int]  # y0, y1, x0, x1 (end exclusive)
Pair = Tuple[int, int]

# 2019 official multi-scale list (danet.md).
DANET_MS_SCALES: Tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.2)


def as_pair(value: int | Sequence[int], what: str = "size") -> Pair:
    """``int`` -> ``(v, v)``; ``(h, w)`` -> itself. Positive ints only."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an int or an (h, w) pair, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{what} must be an int or an (h, w) pair of ints, got {value!r}")
    if min(pair) <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return pair


def danet_scaled_size(height: int, width: int, base_size: int, scale: float) -> Pair:
    """(height, width) of the image at ``scale``: the long side becomes ``ceil(base_size * scale)``.

    The short side is ``int(short * long_size / long + 0.5)`` (round half up), as the official code.
    A square image counts as "width is long" (official ``if h > w`` test).
    """
    long_size = int(math.ceil(base_size * scale))
    if long_size <= 0:
        raise ValueError(f"scale {scale} with base size {base_size} gives a long side of {long_size}")
    if height > width:
        return long_size, max(1, int(1.0 * width * long_size / height + 0.5))
    return max(1, int(1.0 * height * long_size / width + 0.5)), long_size


def danet_stride(crop: int | Sequence[int], num_scales: int) -> Pair:
    """Official stride: ``int(crop * 2/3)`` for single-scale, ``int(crop * 1/2)`` for multi-scale."""
    crop_h, crop_w = as_pair(crop, "crop")
    rate = 2.0 / 3.0 if num_scales == 1 else 1.0 / 2.0
    return max(1, int(crop_h * rate)), max(1, int(crop_w * rate))


def _danet_axis(size: int, crop: int, stride: int) -> List[Tuple[int, int]]:
    grids = int(math.ceil(1.0 * (size - crop) / stride)) + 1 if size > crop else 1
    return [(i * stride, min(i * stride + crop, size)) for i in range(grids)]


def danet_windows(height: int, width: int, crop: int | Sequence[int],
                  stride: int | Sequence[int]) -> List[Window]:
    """Windows over an image ALREADY padded to at least the crop (official order: rows, then columns).

    Raises ValueError if the image is smaller than the crop (the official code pads first; see
    :func:`danet_padded_size`).
    """
    crop_h, crop_w = as_pair(crop, "crop")
    stride_h, stride_w = as_pair(stride, "stride")
    if height < crop_h or width < crop_w:
        raise ValueError(f"danet_windows: image {height}x{width} is smaller than the crop "
                         f"{crop_h}x{crop_w}; pad it first (danet_padded_size)")
    return [(y0, y1, x0, x1) for y0, y1 in _danet_axis(height, crop_h, stride_h)
            for x0, x1 in _danet_axis(width, crop_w, stride_w)]


def danet_padded_size(height: int, width: int, crop: int | Sequence[int]) -> Pair:
    """Size after the official ``pad_image``: each side shorter than the crop is padded to it."""
    crop_h, crop_w = as_pair(crop, "crop")
    return max(height, crop_h), max(width, crop_w)


def _factseg_axis(size: int, crop: int, stride: int) -> List[Tuple[int, int]]:
    if size <= crop:
        return [(0, size)]
    starts = list(range(0, size - crop + 1, stride))
    if starts[-1] + crop < size:
        starts.append(size - crop)  # shifted inward: ends exactly at the border
    return [(s, s + crop) for s in starts]


def factseg_windows(height: int, width: int, crop: int | Sequence[int] = 896,
                    stride: int | Sequence[int] = 512) -> List[Window]:
    """FactSeg windows: crop-sized at ``i * stride``, last one shifted inward; short axes one window."""
    crop_h, crop_w = as_pair(crop, "crop")
    stride_h, stride_w = as_pair(stride, "stride")
    return [(y0, y1, x0, x1) for y0, y1 in _factseg_axis(height, crop_h, stride_h)
            for x0, x1 in _factseg_axis(width, crop_w, stride_w)]


def window_coverage(height: int, width: int, windows: Sequence[Window]) -> np.ndarray:
    """Per-pixel count of covering windows (int64 H x W), to check that every pixel is covered."""
    count = np.zeros((height, width), dtype=np.int64)
    for y0, y1, x0, x1 in windows:
        count[y0:y1, x0:x1] += 1
    return count


WindowRule = Callable[[int, int, int | Sequence[int], int | Sequence[int]], List[Window]]
WINDOW_RULES: Dict[str, WindowRule] = {
    "danet": danet_windows,
    "factseg": factseg_windows,
}
