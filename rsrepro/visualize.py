"""Colour maps and overlays of predictions (numpy + Pillow; used by tools/predict.py and tools/infer.py)."""

from __future__ import annotations

import os
from typing import Sequence, Tuple

import numpy as np
from PIL import Image

from .fileio import atomic_save

__all__ = ["default_palette", "colorize", "overlay", "change_overlay", "save_png", "image_stem", "side_by_side"]


def default_palette(num_classes: int) -> np.ndarray:
    """A deterministic, well-spread palette (the PASCAL VOC bit pattern) for datasets without one."""
    palette = np.zeros((max(256, num_classes), 3), dtype=np.uint8)
    for index in range(palette.shape[0]):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]] | np.ndarray | None = None,
             ignore_index: int = 255) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ``ignore_index`` and ids without a colour are black."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"colorize expects an (H, W) label map, got shape {labels.shape}")
    if palette is None:
        palette = default_palette(int(labels.max()) + 1 if labels.size else 1)
    table = np.zeros((256, 3), dtype=np.uint8)
    colors = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
    table[: len(colors)] = colors
    if 0 <= ignore_index < 256:
        table[ignore_index] = 0
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"colorize: class ids must be 0..255, got {labels.min()}..{labels.max()}")
    return table[labels.astype(np.uint8)]


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an RGB colour map over an RGB image (both uint8 HxWx3)."""
    if image.shape != color.shape:
        raise ValueError(f"overlay: image {image.shape} and colour map {color.shape} differ")
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * color.astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def change_overlay(image: np.ndarray, mask: np.ndarray, color: Tuple[int, int, int] = (255, 0, 0),
                   alpha: float = 0.6) -> np.ndarray:
    """Tint the changed pixels (mask == 1) of an RGB image."""
    out = image.astype(np.float32).copy()
    changed = np.asarray(mask).astype(bool)
    out[changed] = (1.0 - alpha) * out[changed] + alpha * np.asarray(color, dtype=np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: str) -> str:
    """Write an 8-bit PNG atomically (HxW gray or HxWx3 RGB)."""
    picture = Image.fromarray(np.asarray(array, dtype=np.uint8))
    return str(atomic_save(path, lambda tmp: picture.save(tmp, format="PNG")))


def image_stem(path: str) -> str:
    """File name without folder and extension, and without Cityscapes' ``_leftImg8bit`` suffix."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem[: -len("_leftImg8bit")] if stem.endswith("_leftImg8bit") else stem


def side_by_side(panels: Sequence[np.ndarray], captions: Sequence[str] = (), gap: int = 6) -> np.ndarray:
    """Panels (uint8 HxWx3 or HxW, the same height) in one row with ``gap`` white pixels between them and, with
    ``captions``, a caption strip above each (Pillow's default font)."""
    from PIL import ImageDraw

    rgb = [np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p for p in (np.asarray(q, np.uint8) for q in panels)]
    height = rgb[0].shape[0]
    if any(p.shape[0] != height for p in rgb):
        raise ValueError(f"side_by_side: panel heights differ: {[p.shape[0] for p in rgb]}")
    strip = 16 if captions else 0
    width = sum(p.shape[1] for p in rgb) + gap * (len(rgb) - 1)
    canvas = np.full((height + strip, width, 3), 255, np.uint8)
    x = 0
    offsets = []
    for panel in rgb:
        canvas[strip:, x:x + panel.shape[1]] = panel
        offsets.append(x)
        x += panel.shape[1] + gap
    if captions:
        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        for offset, caption in zip(offsets, captions):
            draw.text((offset + 2, 2), caption, fill=(0, 0, 0))
        canvas = np.asarray(picture)
    return canvas
