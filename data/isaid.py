"""iSAID for FactSeg: file discovery, colour-mask decoding with reporting, training windows.

Layout read (the real one; docs/datasets.md)::

    <root>/<split>/images/P0000.png                               8-bit RGB (some DOTA images are gray)
    <root>/<split>/masks/P0000_instance_color_RGB.png             semantic colour mask (FactSeg's folder)
        or <root>/<split>/Semantic_masks/images/P0000_instance_color_RGB.png   (as the download unpacks)
        or next to the image in images/                                        (mixed folder)

``*_instance_id_RGB.png`` instance masks may sit in the same folders; they are skipped. Masks are
decoded by ``rsrepro.isaid.decode_color_mask`` (official key R + 2G + 3B; colours outside the palette
become 0 as in the official code) and every file that holds such colours is REPORTED: a warning with
the pixel count and the file (``on_unknown="warn"``, default, once per file and process), an error
(``"error"``), or nothing (``"ignore"``).

Training samples (official ``PatchBasedDataset`` + iSAID config): every ``window`` x ``window`` window at
stride ``stride`` over the FULL image (``rsrepro.factseg_windows``: last window shifted inward, a side
shorter than the window gives one window of its length), in image order then window order (rows,
then columns); transforms ``transforms.factseg_train_transforms``: h-flip 0.5, v-flip 0.5, rot90 x k with k drawn
from (0, 1, 2, 3), pad bottom/right to the window (image 0, label 255), then ``(x - mean) / std`` on the
0-255 scale in float32. Draws come from a ``random.Random`` in that order (one ``random()`` per flip,
one ``choice`` for k), as the official transforms draw from Python's ``random`` module.

Validation samples: whole images (the sliding-window evaluator cuts the windows). ``raw=True`` returns
the uint8 image and label (what ``paddle_models/engine/factseg_eval.py`` streams over; a 13,000 x 13,000
image is 0.5 GB as uint8 but 2 GB normalised); otherwise the normalised float32 CHW image.

``dataset[i]`` returns ``(image, label)``: float32 3xHxW normalised (or uint8 HxWx3 with ``raw``) and int64
HxW labels (uint8 with ``raw``), 255 = ignore (only from padding).

Deviations from the official code: files are sorted (official: ``glob`` order); images that are not RGB
are converted as the official ``.convert('RGB')`` does, with a warning naming the file
(``convert_images=False`` refuses them); unknown mask colours are reported (above); a missing mask, or a
mask whose size differs from its image, is an error naming both files (official: a crash or silently
misaligned crops).
"""

from __future__ import annotations

import os
import random
import warnings
from typing import Any, Dict, List, NamedTuple, Tuple

import numpy as np
from PIL import Image

from rsrepro.factseg_windows import factseg_windows
from rsrepro.isaid import CLASS_NAMES as FACTSEG_CLASS_NAMES
from rsrepro.isaid import (
    DEVKIT_CLASS_NAMES,
    IGNORE_INDEX,
    NUM_CLASSES,
    PALETTE,
    ColorReport,
    decode_color_mask,
)

from .errors import DatasetError
from .io import read_image
from .registry import DATASETS
from .seeding import EpochSeededSamples
from .transforms import (  # noqa: F401  (the iSAID transforms, importable from here as before)
    NormalizePixels,
    RandomRotate90K,
    RandomVerticalFlip,
    build_transforms,
    factseg_train_transforms,
    factseg_val_transforms,
)

__all__ = [
    "ISAIDPair",
    "ISAIDDataset",
    "find_isaid_pairs",
    "read_isaid_mask",
    "RandomVerticalFlip",
    "RandomRotate90K",
    "NormalizePixels",
    "factseg_train_transforms",
    "factseg_val_transforms",
    "MASK_SUFFIX",
]

MASK_SUFFIX = "_instance_color_RGB.png"
_INSTANCE_SUFFIX = "_instance_id_RGB.png"
_MASK_FOLDERS = (("masks",), ("Semantic_masks", "images"), ("images",))
ON_UNKNOWN = ("warn", "error", "ignore")


class ISAIDPair(NamedTuple):
    image: str
    mask: str | None


def _open_size(path: str) -> Tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise DatasetError(f"file is empty (0 bytes): {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read the image header ({exc}): {path}") from exc
    return height, width


def find_isaid_pairs(root: str, split: str, image_dir: str | None = None, mask_dir: str | None = None,
                     require_masks: bool = True) -> List[ISAIDPair]:
    """Pair every ``<root>/<split>/images/*.png`` with its ``*_instance_color_RGB.png`` mask.

    ``image_dir`` / ``mask_dir`` override the folders (absolute, or relative to ``root``). Without
    ``mask_dir`` the masks are looked up in ``masks/``, ``Semantic_masks/images/`` and ``images/`` of
    the split, in that order. ``require_masks=False`` (test split) allows images without a mask.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"iSAID root folder not found: {root}")
    split_dir = os.path.join(root, split)
    images = os.path.join(root, image_dir) if image_dir else os.path.join(split_dir, "images")
    if not os.path.isdir(images):
        raise DatasetError(f"iSAID image folder for split '{split}' not found: {images}")
    if mask_dir:
        mask_folders = [os.path.join(root, mask_dir)]
    else:
        mask_folders = [os.path.join(split_dir, *parts) for parts in _MASK_FOLDERS]
    names = sorted(n for n in os.listdir(images)
                   if n.lower().endswith(".png") and not n.endswith((MASK_SUFFIX, _INSTANCE_SUFFIX)))
    if not names:
        raise DatasetError(f"no iSAID images (*.png) in {images}")
    pairs: List[ISAIDPair] = []
    missing: List[str] = []
    for name in names:
        stem = name[: -len(".png")]
        mask = next((os.path.join(folder, stem + MASK_SUFFIX) for folder in mask_folders
                     if os.path.isfile(os.path.join(folder, stem + MASK_SUFFIX))), None)
        if mask is None and require_masks:
            missing.append(name)
        pairs.append(ISAIDPair(os.path.join(images, name), mask))
    if missing:
        raise DatasetError(f"{len(missing)} iSAID image(s) in {images} have no mask; first: {missing[0]} "
                           f"(looked for <stem>{MASK_SUFFIX} in {', '.join(mask_folders)})")
    return pairs


_WARNED: set = set()


def read_isaid_mask(path: str, on_unknown: str = "warn", window: Tuple[int, int, int, int] | None = None,
                    ) -> Tuple[np.ndarray, ColorReport]:
    """Class indices (uint8 HxW) of a colour mask file (``window`` = (y0, y1, x0, x1) crops first)."""
    if on_unknown not in ON_UNKNOWN:
        raise DatasetError(f"on_unknown must be one of {ON_UNKNOWN}, got {on_unknown!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        rgb = read_image(path, convert=True)
    if window is not None:
        y0, y1, x0, x1 = window
        rgb = rgb[y0:y1, x0:x1]
    labels, report = decode_color_mask(rgb)
    if report.unknown:
        where = f"{path}" + (f" (window y {window[0]}:{window[1]}, x {window[2]}:{window[3]})" if window else "")
        if on_unknown == "error":
            raise DatasetError(f"mask has {report.describe()}: {where} (pass on_unknown='warn' to accept them "
                               f"as the official code does)")
        if on_unknown == "warn" and path not in _WARNED:
            _WARNED.add(path)
            warnings.warn(f"iSAID mask {where}: {report.describe()} (reported once per file)", UserWarning,
                          stacklevel=2)
    return labels, report


# -------------------------------------------------------------------------------------- dataset
@DATASETS.register("isaid")
class ISAIDDataset(EpochSeededSamples):
    """iSAID (16 classes) for FactSeg, returning numpy arrays.

    Args:
        root (str): dataset root holding ``<split>/images`` and the masks (module docstring).
        split (str): "train", "val" or "test". Default "train".
        mode (str | None): "train" (windows + augmentation) or "val" (whole images). Default: "train"
            for split "train", else "val".
        window (int): training window size. Default 896.
        stride (int): training window stride. Default 512.
        transform: callable ``(image, label, rng) -> (image, label)`` or a transform config; default
            ``factseg_train_transforms(window)`` in train mode, ``factseg_val_transforms()`` in val mode.
        seed (int | None): with an int, sample ``i`` of epoch ``e`` draws from
            ``random.Random(f"{seed}:{e}:{i}")``; None: a fresh OS-seeded generator per sample.
        on_unknown (str): "warn" (default), "error" or "ignore" for mask colours outside the palette.
        convert_images (bool): convert non-RGB images like the official code (warning). Default True.
        raw (bool): val mode returns uint8 image HxWx3 and uint8 labels (for the streaming evaluator).
        image_dir, mask_dir (str | None): folder overrides (relative to ``root``).
    """

    NUM_CLASSES = NUM_CLASSES
    IGNORE_INDEX = IGNORE_INDEX
    CLASS_NAMES = DEVKIT_CLASS_NAMES  # per-class tables use the devkit names (rsrepro.isaid.NAMING_NOTE)
    FACTSEG_CLASS_NAMES = FACTSEG_CLASS_NAMES
    PALETTE = PALETTE
    # the validation pipeline when none is configured (normalisation of deploy.yml, tools/predict.py)
    default_val_transforms = staticmethod(factseg_val_transforms)

    def __init__(self, root: str, split: str = "train", mode: str | None = None, window: int = 896,
                 stride: int = 512, transform: Any = None, seed: int | None = None, on_unknown: str = "warn",
                 convert_images: bool = True, raw: bool = False, image_dir: str | None = None,
                 mask_dir: str | None = None) -> None:
        mode = mode if mode is not None else ("train" if split == "train" else "val")
        if mode not in ("train", "val"):
            raise DatasetError(f"mode must be 'train' or 'val', got {mode!r}")
        if on_unknown not in ON_UNKNOWN:
            raise DatasetError(f"on_unknown must be one of {ON_UNKNOWN}, got {on_unknown!r}")
        if int(window) <= 0 or int(stride) <= 0:
            raise DatasetError(f"window and stride must be positive, got {window}, {stride}")
        self.root, self.split, self.mode = os.fspath(root), split, mode
        self.window, self.stride = int(window), int(stride)
        self.seed, self.epoch = seed, 0
        self.on_unknown, self.convert_images, self.raw = on_unknown, bool(convert_images), bool(raw)
        self.pairs = find_isaid_pairs(self.root, split, image_dir, mask_dir, require_masks=split != "test")
        self.files = [(p.image, p.mask) for p in self.pairs]
        if transform is None:
            transform = factseg_train_transforms(self.window) if mode == "train" else factseg_val_transforms()
        elif not callable(transform):
            transform = build_transforms(transform)
        self.transform = transform
        # (pair index, window) per sample; val mode: one whole-image sample per pair.
        self.samples: List[Tuple[int, Tuple[int, int, int, int] | None]] = []
        if mode == "train":
            for index, pair in enumerate(self.pairs):
                height, width = _open_size(pair.image)
                self.samples += [(index, w) for w in factseg_windows(height, width, self.window, self.stride)]
        else:
            self.samples = [(index, None) for index in range(len(self.pairs))]

    def __len__(self) -> int:
        return len(self.samples)

    def read_sample(self, index: int) -> Tuple[np.ndarray, np.ndarray | None]:
        """Sample ``index`` untransformed: image uint8 HxWx3 (the window in train mode), labels uint8 HxW."""
        pair_index, window = self.samples[index]
        pair = self.pairs[pair_index]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = read_image(pair.image, convert=self.convert_images)
        if pair.mask is None:
            labels = None
        else:
            mask_size = _open_size(pair.mask)
            if mask_size != image.shape[:2]:
                raise DatasetError(f"mask size {mask_size[1]}x{mask_size[0]} (WxH) differs from image size "
                                   f"{image.shape[1]}x{image.shape[0]}: mask {pair.mask}, image {pair.image}")
            labels, _ = read_isaid_mask(pair.mask, self.on_unknown, window)
        if window is not None:
            y0, y1, x0, x1 = window
            image = np.ascontiguousarray(image[y0:y1, x0:x1])
        return image, labels

    def load(self, index: int, rng: random.Random | None = None) -> Tuple[np.ndarray, np.ndarray | None]:
        image, labels = self.read_sample(index)
        if self.raw and self.mode == "val":
            return image, labels
        return self.transform(image, labels, rng if rng is not None else self.rng_for(index))

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray | None]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return self.load(index % len(self))

    def scan_masks(self) -> Dict[str, ColorReport]:
        """Decode every mask once; returns {mask path: report} for the files with unknown colours."""
        found: Dict[str, ColorReport] = {}
        for pair in self.pairs:
            if pair.mask is not None:
                _, report = read_isaid_mask(pair.mask, "ignore")
                if report.unknown:
                    found[pair.mask] = report
        return found

    def __repr__(self) -> str:
        return (f"ISAIDDataset(root={self.root!r}, split={self.split!r}, mode={self.mode!r}, "
                f"images={len(self.pairs)}, samples={len(self)})")
