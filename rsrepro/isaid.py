"""iSAID semantic classes, colour palette and colour-mask decoding (framework-free, numpy only).

Semantic masks (``Pxxxx_instance_color_RGB.png``) encode the class as an RGB colour. FactSeg's class
order and colours (official ``data/isaid.py::COLOR_MAP``; docs/datasets.md) are used for
the indices 0..15. The official decoder (``RemoveColorMap``) computes the key ``R + 2G + 3B`` of every
pixel and writes the index of the palette colour with that key; a key that matches no palette colour
stays 0 (background). The 16 palette keys are unique, but the key is not injective over all colours: an
unknown colour whose key equals a palette key is decoded as that class. ``decode_color_mask`` does
exactly that and counts what the official code silently accepts (``unknown`` pixels, of which
``aliased`` got a foreground class) so that the data layer can warn or refuse.

Class names: ``CLASS_NAMES`` are FactSeg's (also FarSeg's and PaddleRS's). The iSAID devkit and
mmsegmentation call colour (0, 63, 63) "storage tank" and (0, 191, 127) "roundabout", i.e. FactSeg's
names for indices 2 and 12 are swapped. Indices (and so mIoU) are unaffected; per-class tables should
use ``DEVKIT_CLASS_NAMES`` (devkit names by FactSeg index) and say so (``NAMING_NOTE``).
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

import numpy as np

__all__ = [
    "NUM_CLASSES",
    "IGNORE_INDEX",
    "CLASS_NAMES",
    "DEVKIT_CLASS_NAMES",
    "NAMING_NOTE",
    "PALETTE",
    "KEY_WEIGHTS",
    "MEAN",
    "STD",
    "color_key",
    "ColorReport",
    "decode_color_mask",
    "encode_color_mask",
]

NUM_CLASSES = 16
IGNORE_INDEX = 255

# FactSeg order (official COLOR_MAP), RGB.
PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (0, 0, 0), (0, 0, 63), (0, 191, 127), (0, 63, 0), (0, 63, 127), (0, 63, 191), (0, 63, 255), (0, 127, 63),
    (0, 127, 127), (0, 0, 127), (0, 0, 191), (0, 0, 255), (0, 63, 63), (0, 127, 191), (0, 127, 255),
    (0, 100, 155),
)  # fmt: skip
CLASS_NAMES: Tuple[str, ...] = (
    "background", "ship", "storage_tank", "baseball_diamond", "tennis_court", "basketball_court",
    "ground_track_field", "bridge", "large_vehicle", "small_vehicle", "helicopter", "swimming_pool",
    "roundabout", "soccer_ball_field", "plane", "harbor",
)  # fmt: skip
# The devkit's name of each FactSeg index (2 <-> 12 swapped against CLASS_NAMES).
DEVKIT_CLASS_NAMES: Tuple[str, ...] = tuple(
    {"storage_tank": "roundabout", "roundabout": "storage_tank"}.get(n, n) for n in CLASS_NAMES)
NAMING_NOTE = ("class names follow the iSAID devkit: colour (0,191,127) = index 2 is 'roundabout' and "
               "(0,63,63) = index 12 is 'storage_tank'; FactSeg/FarSeg/PaddleRS call them the other way "
               "round (indices and mIoU are the same)")

KEY_WEIGHTS = (1, 2, 3)  # key = R + 2G + 3B
# Pixel-scale (0-255) normalisation of the official config.
MEAN: Tuple[float, float, float] = (123.675, 116.28, 103.53)
STD: Tuple[float, float, float] = (58.395, 57.12, 57.375)

_PALETTE = np.asarray(PALETTE, dtype=np.int32)
_MAX_KEY = 255 * sum(KEY_WEIGHTS)


def color_key(rgb: np.ndarray) -> np.ndarray:
    """``R + 2G + 3B`` (int32) of an ``... x 3`` array."""
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.int32) + 2 * rgb[..., 1].astype(np.int32)
            + 3 * rgb[..., 2].astype(np.int32))


def _key_table() -> np.ndarray:
    keys = color_key(_PALETTE)
    if len(set(keys.tolist())) != len(keys):
        raise AssertionError("iSAID palette keys are not unique")
    table = np.zeros(_MAX_KEY + 1, dtype=np.uint8)  # unknown keys -> 0, as the official loop
    table[keys] = np.arange(len(keys), dtype=np.uint8)
    table.setflags(write=False)
    return table


KEY_TO_CLASS = _key_table()


class ColorReport(NamedTuple):
    """What a decode met: ``unknown`` pixels (colour not in the palette), ``aliased`` of them (key equal
    to a palette key, decoded as that foreground class as the official code does), and up to 8
    example colours with their pixel counts."""

    unknown: int
    aliased: int
    examples: List[Tuple[Tuple[int, int, int], int]]

    def describe(self) -> str:
        shown = ", ".join(f"{c} x{n}" for c, n in self.examples)
        return (f"{self.unknown} pixels with colours outside the iSAID palette ({shown}); decoded as the "
                f"official code does: by key R+2G+3B, so {self.unknown - self.aliased} became background (0) "
                f"and {self.aliased} a foreground class whose key they share")


def decode_color_mask(mask: np.ndarray, chunk_rows: int = 1024) -> Tuple[np.ndarray, ColorReport]:
    """Class indices (uint8 HxW) of an RGB colour mask (HxWx3 uint8), and the unknown-colour report.

    Processed in bands of ``chunk_rows`` rows so that a 13,000 x 13,000 mask needs no full-size int32
    temporaries.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3 or mask.shape[2] != 3 or mask.dtype != np.uint8:
        raise ValueError(f"colour mask must be H x W x 3 uint8, got shape {mask.shape} dtype {mask.dtype}")
    height = mask.shape[0]
    labels = np.empty(mask.shape[:2], dtype=np.uint8)
    unknown = aliased = 0
    counts: Dict[Tuple[int, int, int], int] = {}
    for start in range(0, height, max(1, int(chunk_rows))):
        band = mask[start:start + chunk_rows]
        decoded = KEY_TO_CLASS[color_key(band)]
        labels[start:start + chunk_rows] = decoded
        bad = np.any(band != _PALETTE[decoded].astype(np.uint8), axis=2)
        n_bad = int(bad.sum())
        if n_bad:
            unknown += n_bad
            aliased += int((decoded[bad] != 0).sum())
            colors, freq = np.unique(band[bad].reshape(-1, 3), axis=0, return_counts=True)
            for color, n in zip(colors.tolist(), freq.tolist()):
                counts[tuple(color)] = counts.get(tuple(color), 0) + int(n)
    examples = sorted(counts.items(), key=lambda item: -item[1])[:8]
    return labels, ColorReport(unknown, aliased, examples)


def encode_color_mask(labels: np.ndarray) -> np.ndarray:
    """RGB colour mask (HxWx3 uint8) of class indices; 255 (ignore) is white, which decodes to 0."""
    labels = np.asarray(labels)
    lut = np.full((256, 3), 255, dtype=np.uint8)
    lut[:NUM_CLASSES] = _PALETTE.astype(np.uint8)
    return lut[labels.astype(np.uint8)]
