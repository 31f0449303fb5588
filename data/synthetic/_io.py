"""File writing shared by the synthetic generators (Pillow; the real encodings)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def save_png(array: np.ndarray, path: str) -> None:
    """uint8 HxW -> 8-bit gray, HxWx3 -> RGB, HxWx4 -> RGBA, uint16 HxW -> 16-bit gray (fast compression)."""
    Image.fromarray(array).save(path, compress_level=1)


def encode(array: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    else:
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
