"""FactSeg's window rule (training patches and sliding-window evaluation), pure Python.

Official rule (SimpleCV ``simplecv/data/_np_preprocess.py::sliding_window``, used by FactSeg's
``PatchBasedDataset`` and ``tools/isaid_eval.py`` with kernel 896 and stride 512): along each axis of
length ``size`` with kernel ``k`` (clipped to ``size`` when the image is smaller) there are
``ceil((size - k) / stride) + 1`` windows starting at ``i * stride``; a window that would pass the border
is SHIFTED INWARD to end exactly at it (so it keeps its full length). Windows are listed row by row
(y outer, x inner). A window is ``(y0, y1, x0, x1)``, end exclusive (the official boxes are
``(x1, y1, x2, y2)``).

Examples (896 / 512): 800 -> [0, 800); 1000 -> [0, 896), [104, 1000); 2000 -> starts 0, 512, 1024, 1104
(the last two overlap by 816 px, so a pixel can be covered by up to 3 windows per axis, 9 in all).

``window_rows`` groups the windows into bands of one window row each, with the image rows every band
still needs: the streaming evaluator (``paddle_models/engine/factseg_eval.py``) finishes the rows above
the next band's start after each band.

(``common/windows.py`` carries the same rule as ``WINDOW_RULES["factseg"]`` for the generic evaluator;
``tests/test_factseg_eval.py`` checks both against a transcription of the official function.)
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Sequence, Tuple

__all__ = ["Window", "axis_windows", "factseg_windows", "WindowRow", "window_rows", "max_coverage"]

Window = Tuple[int, int, int, int]  # y0, y1, x0, x1


def axis_windows(size: int, kernel: int = 896, stride: int = 512) -> List[Tuple[int, int]]:
    """[(start, end)] along one axis (module docstring)."""
    if size <= 0 or kernel <= 0 or stride <= 0:
        raise ValueError(f"size, kernel and stride must be positive, got {size}, {kernel}, {stride}")
    kernel = min(kernel, size)
    count = int(math.ceil((size - kernel) / stride)) + 1
    starts = [min(i * stride, size - kernel) for i in range(count)]
    return [(s, s + kernel) for s in starts]


def _pair(value: int | Sequence[int]) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise ValueError(f"expected an int or an (h, w) pair, got {value!r}")
    return int(value[0]), int(value[1])


def factseg_windows(height: int, width: int, kernel: int | Sequence[int] = 896, stride: int = 512) -> List[Window]:
    """All windows of an image, row by row (y outer, x inner), as the official order."""
    kernel_h, kernel_w = _pair(kernel)
    return [(y0, y1, x0, x1) for y0, y1 in axis_windows(height, kernel_h, stride)
            for x0, x1 in axis_windows(width, kernel_w, stride)]


class WindowRow(NamedTuple):
    """One row of windows: image rows ``[y0, y1)``, the windows (left to right), and ``done``: the
    image rows ``[previous done, done)`` that no later row covers, final once this row is added."""

    y0: int
    y1: int
    windows: List[Window]
    done: int


def window_rows(height: int, width: int, kernel: int | Sequence[int] = 896, stride: int = 512) -> List[WindowRow]:
    kernel_h, kernel_w = _pair(kernel)
    ys = axis_windows(height, kernel_h, stride)
    xs = axis_windows(width, kernel_w, stride)
    rows = []
    for i, (y0, y1) in enumerate(ys):
        done = ys[i + 1][0] if i + 1 < len(ys) else height
        rows.append(WindowRow(y0, y1, [(y0, y1, x0, x1) for x0, x1 in xs], done))
    return rows


def max_coverage(size: int, kernel: int = 896, stride: int = 512) -> int:
    """Most windows covering one position along an axis."""
    counts = [0] * size
    for start, end in axis_windows(size, kernel, stride):
        for i in range(start, end):
            counts[i] += 1
    return max(counts)
