"""The demo's side-by-side panels (rsrepro.visualize.side_by_side)."""

from __future__ import annotations

import numpy as np
import pytest

from rsrepro.visualize import side_by_side


def test_panels_keep_their_pixels_in_one_row_with_gaps_and_captions():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 5, 3), dtype=np.uint8)
    mask = np.zeros((8, 4), np.uint8)
    mask[2:4, 1:3] = 255
    canvas = side_by_side([rgb, mask], ["t0", "label"], gap=3)
    assert canvas.shape == (8 + 16, 5 + 3 + 4, 3)
    np.testing.assert_array_equal(canvas[16:, :5], rgb)
    np.testing.assert_array_equal(canvas[16:, 8:, 0], mask)  # grey panels are repeated into RGB
    assert (canvas[16:, 5:8] == 255).all()  # the gap
    assert (canvas[:16] < 255).any()  # a caption was drawn


def test_panels_of_different_heights_are_refused():
    with pytest.raises(ValueError, match="heights differ"):
        side_by_side([np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)])
