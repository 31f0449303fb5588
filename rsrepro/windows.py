"""Sliding-window and multi-scale geometry of the papers' evaluation protocols (framework-free).

Everything here is integer arithmetic on sizes (numpy only for the coverage check); the evaluator
(``paddle_models/engine/evaluator.py``) applies it to tensors. A window is ``(y0, y1, x0, x1)`` in the
coordinates of the (padded) image, end exclusive.

DANet (official ``MultiEvalModule``, 2019 tree; see docs/danet.md):
    - scale size: ``long = ceil(base_size * scale)``; the short side keeps the aspect ratio,
      ``int(short * long / long_side + 0.5)`` (:func:`danet_scaled_size`);
    - stride: ``int(crop * 2/3)`` with one scale, ``int(crop * 1/2)`` with several (:func:`danet_stride`);
    - if ``long <= crop`` the whole (padded-to-crop) image is one window; otherwise the image is first
      padded up to the crop on any side shorter than it, then windows start at ``i * stride`` for
      ``i < ceil((size - crop) / stride) + 1`` and are CLIPPED at the image border (the last one may
      be shorter than the crop; it is padded to the crop before the forward pass and cropped after)
      (:func:`danet_windows`).

FactSeg (official SimpleCV ``simplecv/data/_np_preprocess.py::sliding_window``, used by FactSeg's
``PatchBasedDataset`` and ``tools/isaid_eval.py`` with kernel 896 and stride 512; docs/factseg.md):
along an axis of length ``size`` with kernel ``k`` (clipped to ``size`` when the image is smaller) there
are ``ceil((size - k) / stride) + 1`` windows starting at ``i * stride``; a window that would pass the
border is SHIFTED INWARD to end exactly at it (so it keeps its full length). Row by row (y outer, x
inner) (:func:`factseg_axis_windows`, :func:`factseg_windows`; registered as "factseg" in
``WINDOW_RULES``). Examples (896 / 512): 800 -> [0, 800); 1000 -> [0, 896), [104, 1000); 2000 ->
starts 0, 512, 1024, 1104 (a pixel can be covered by up to 3 windows per axis, 9 in all).
:func:`factseg_window_rows` groups the windows into rows with the image rows each row finishes, for the
streaming evaluator (``paddle_models/engine/factseg_eval.py``). This is the only implementation of the
rule: ``rsrepro/factseg_windows.py`` re-exports it under its older names, and
``tests/test_factseg_eval.py`` checks it against a transcription of the official function.

A new rule: a function ``(height, width, crop, stride) -> list of windows`` added to ``WINDOW_RULES``.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

__all__ = [
    "Window",
    "as_pair",
    "danet_scaled_size",
    "danet_stride",
    "danet_windows",
    "factseg_axis_windows",
    "factseg_windows",
    "FactSegWindowRow",
    "factseg_window_rows",
    "factseg_max_coverage",
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


def factseg_axis_windows(size: int, crop: int = 896, stride: int = 512) -> List[Tuple[int, int]]:
    """[(start, end)] along one axis: official count and starts, the last window shifted inward."""
    if isinstance(size, bool) or int(size) <= 0 or int(crop) <= 0 or int(stride) <= 0:
        raise ValueError(f"size, crop and stride must be positive, got {size}, {crop}, {stride}")
    size, crop, stride = int(size), min(int(crop), int(size)), int(stride)
    count = int(math.ceil((size - crop) / stride)) + 1
    return [(s, s + crop) for s in (min(i * stride, size - crop) for i in range(count))]


def factseg_windows(height: int, width: int, crop: int | Sequence[int] = 896,
                    stride: int | Sequence[int] = 512) -> List[Window]:
    """FactSeg windows of an image, row by row (y outer, x inner), as the official order."""
    crop_h, crop_w = as_pair(crop, "crop")
    stride_h, stride_w = as_pair(stride, "stride")
    return [(y0, y1, x0, x1) for y0, y1 in factseg_axis_windows(height, crop_h, stride_h)
            for x0, x1 in factseg_axis_windows(width, crop_w, stride_w)]


class FactSegWindowRow(NamedTuple):
    """One row of windows: image rows ``[y0, y1)``, the windows (left to right), and ``done``: the
    image rows ``[previous done, done)`` that no later row covers, final once this row is added."""

    y0: int
    y1: int
    windows: List[Window]
    done: int


def factseg_window_rows(height: int, width: int, crop: int | Sequence[int] = 896,
                        stride: int | Sequence[int] = 512) -> List[FactSegWindowRow]:
    """:func:`factseg_windows` grouped by window row (same windows, same order)."""
    crop_h, crop_w = as_pair(crop, "crop")
    stride_h, stride_w = as_pair(stride, "stride")
    ys = factseg_axis_windows(height, crop_h, stride_h)
    xs = factseg_axis_windows(width, crop_w, stride_w)
    rows = []
    for i, (y0, y1) in enumerate(ys):
        done = ys[i + 1][0] if i + 1 < len(ys) else height
        rows.append(FactSegWindowRow(y0, y1, [(y0, y1, x0, x1) for x0, x1 in xs], done))
    return rows


def factseg_max_coverage(size: int, crop: int = 896, stride: int = 512) -> int:
    """Most windows covering one position along an axis."""
    counts = np.zeros(int(size), dtype=np.int64)
    for start, end in factseg_axis_windows(size, crop, stride):
        counts[start:end] += 1
    return int(counts.max())


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
