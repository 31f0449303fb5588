"""Image and label reading with errors that name the file and say what was found.

Decoding uses Pillow, like the official DANet code (``Image.open(path).convert('RGB')``), so the pixels
are the ones the official pipeline sees. Two differences, both on purpose:

- the official ``.convert('RGB')`` silently turns a grayscale, palette or RGBA file into RGB; here such
  a file is an error unless ``convert=True`` (then it is converted the official way, with a warning);
- a truncated file is always an error. Pillow's ``load()`` raises on a truncated PNG, but only while
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False; some libraries set it to True process-wide, after
  which Pillow fills the missing rows with black and says nothing. When it is True, the file is first
  checked with ``Image.verify()`` (chunk structure and CRCs), which still raises on truncation.
  (OpenCV's ``cv2.imread`` returns None for the same files, but gives no reason.)

``list_images`` / ``pair_images`` find the image files (and the t0 / t1 pairs, matched by file name) that
tools/predict.py and tools/infer.py run on.
"""

from __future__ import annotations

import os
import warnings
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import DatasetError

PathLike = str | os.PathLike

_MODE_WORDS = {
    "1": "1-bit black-and-white (1 channel)",
    "L": "grayscale (1 channel)",
    "LA": "grayscale + alpha (2 channels)",
    "P": "palette (1 channel of palette indices)",
    "PA": "palette + alpha (2 channels)",
    "RGB": "RGB (3 channels)",
    "RGBA": "RGBA (4 channels)",
    "RGBa": "RGBA, premultiplied (4 channels)",
    "CMYK": "CMYK (4 channels)",
    "YCbCr": "YCbCr (3 channels)",
    "LAB": "Lab (3 channels)",
    "HSV": "HSV (3 channels)",
    "I": "32-bit integer (1 channel)",
    "F": "32-bit float (1 channel)",
    "I;16": "16-bit (1 channel)",
    "I;16B": "16-bit big-endian (1 channel)",
    "I;16L": "16-bit little-endian (1 channel)",
}
_INTEGER_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def describe_mode(mode: str) -> str:
    """A human description of a Pillow mode, e.g. ``'RGBA (4 channels)'``."""
    return _MODE_WORDS.get(mode, f"mode {mode!r}")


def _open_decoded(path: PathLike, what: str) -> Image.Image:
    """Open and fully decode ``path``; every failure becomes a DatasetError naming the file."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise DatasetError(f"{what} file not found: {name}")
    if os.path.isdir(name):
        raise DatasetError(f"{what} path is a directory, expected an image file: {name}")
    if os.path.getsize(name) == 0:
        raise DatasetError(f"{what} file is empty (0 bytes): {name}")
    try:
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            # load() would silently pad a truncated file; verify() still checks the structure.
            with Image.open(name) as probe:
                probe.verify()
        image = Image.open(name)
        image.load()
    except UnidentifiedImageError as exc:
        raise DatasetError(f"{what} file is not a readable image (unknown or corrupt header): {name}") \
            from exc
    except Image.DecompressionBombError as exc:
        raise DatasetError(
            f"{what} file is larger than Pillow's safety limit ({exc}); raise "
            f"PIL.Image.MAX_IMAGE_PIXELS if this image is genuine: {name}"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DatasetError(f"{what} file is truncated or corrupt ({exc}): {name}") from exc
    return image


def read_image(path: PathLike, convert: bool = False) -> np.ndarray:
    """Read an 8-bit RGB image as an ``H x W x 3`` uint8 array (RGB order).

    Args:
        path: image file (PNG, JPEG, ... anything Pillow decodes).
        convert: if False (default) only 3-channel RGB files are accepted; a grayscale, palette, RGBA
            or other file raises ``DatasetError`` saying what was found. If True, such a file is
            converted like the official code does (``Image.convert('RGB')``: alpha dropped, gray
            replicated) and a ``UserWarning`` naming the file is issued.
    """
    name = os.fspath(path)
    image = _open_decoded(name, "image")
    if image.mode != "RGB":
        found = describe_mode(image.mode)
        if not convert:
            hint = ""
            if image.mode in ("RGBA", "LA", "PA", "RGBa"):
                hint = " (converting would drop the alpha channel)"
            raise DatasetError(
                f"image must be 3-channel RGB, found {found}{hint}; re-save it as RGB or pass "
                f"convert=True to convert it like the official code: {name}"
            )
        warnings.warn(f"converting {found} image to RGB: {name}", UserWarning, stacklevel=2)
        image = image.convert("RGB")
    array = np.array(image, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise DatasetError(f"image decoded to shape {array.shape}, expected H x W x 3: {name}")
    return array


def read_label(path: PathLike) -> np.ndarray:
    """Read a single-channel label map (class ids) as an ``H x W`` uint8 array.

    Grayscale (``L``) and palette (``P``, values = palette indices) files are accepted as they are;
    16/32-bit integer files are accepted when every value fits in 0..255. Colour files are refused:
    a 3-channel label is almost always a ``*_color.png`` visualisation picked by mistake.
    """
    name = os.fspath(path)
    image = _open_decoded(name, "label")
    mode = image.mode
    if mode in ("L", "P"):
        return np.array(image, dtype=np.uint8)
    if mode in _INTEGER_MODES:
        values = np.array(image)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise DatasetError(
                f"label must hold class ids 0..255, found a {describe_mode(mode)} file with values "
                f"{int(values.min())}..{int(values.max())} (an instance-id map such as "
                f"*_instanceIds.png?): {name}"
            )
        return values.astype(np.uint8)
    hint = " (a *_color.png visualisation instead of an id map?)" if mode in ("RGB", "RGBA") else ""
    raise DatasetError(
        f"label must be a single-channel id map, found {describe_mode(mode)}{hint}: {name}"
    )


_MULTI_CHANNEL_MODES = ("RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LA", "PA")


def _peek_mode(name: str) -> str | None:
    """The Pillow mode from the file header (no decoding); None when the header is unreadable."""
    try:
        with Image.open(name) as probe:
            return probe.mode
    except Exception:  # read_label reports the reason
        return None


def read_mask(path: PathLike, allow_rgb: bool = False) -> np.ndarray:
    """Read a single-channel mask (a change label) as an ``H x W`` uint8 array.

    Single-channel files are read by ``read_label`` (grayscale, palette, and 16/32-bit files whose values fit
    0..255). A multi-channel file raises ``DatasetError`` unless ``allow_rgb`` is True; then it is converted
    to RGB and its BLUE channel is returned: the channel the official LSNet label tool reads
    (``cv2.imread(path)[:, :, 0]``, BGR order). For a grey picture saved as RGB all three are equal.
    """
    name = os.fspath(path)
    mode = _peek_mode(name) if os.path.isfile(name) and os.path.getsize(name) > 0 else None
    if mode not in _MULTI_CHANNEL_MODES:
        return read_label(name)
    if not allow_rgb:
        raise DatasetError(
            f"label must be a single-channel (grayscale) mask, found {describe_mode(mode)}; re-save it as "
            f"8-bit grayscale: {name}"
        )
    image = _open_decoded(name, "label").convert("RGB")
    return np.array(image, dtype=np.uint8)[:, :, 2]


# image files that list_images picks up in a folder
IMAGE_FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def list_images(paths: Sequence[str]) -> List[str]:
    """Image files given directly or found (recursively, sorted) in the given folders."""
    found: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, names in sorted(os.walk(path)):
                found += [os.path.join(folder, n) for n in sorted(names) if n.lower().endswith(IMAGE_FILE_EXTENSIONS)]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {path}")
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_FILE_EXTENSIONS)}) in {list(paths)}")
    return found


def pair_images(t0: Sequence[str], t1: Sequence[str]) -> List[Tuple[str, str]]:
    """Pairs of (t0, t1) files matched by file name."""
    first = {os.path.basename(p): p for p in list_images(t0)}
    second = {os.path.basename(p): p for p in list_images(t1)}
    missing = sorted(set(first) ^ set(second))
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) without a partner in the other time, e.g. {missing[:3]}")
    return [(first[name], second[name]) for name in sorted(first)]
