"""iSAID for FactSeg — PyTorch reference in the style of the official code.

Official code: https://github.com/Junjue-Wang/FactSeg — ``data/isaid.py`` (``COLOR_MAP``,
``RemoveColorMap``, ``ISAIDSegmmDataset``, ``ImageFolderDataset``), ``data/patch_base.py``
(``PatchBasedDataset``) and SimpleCV's ``sliding_window`` and ``api/preprocess/segm.py`` / ``comm.py``
transforms (``RandomHorizontalFlip``, ``RandomVerticalFlip``, ``RandomRotate90K``, ``FixedPad``,
``ToTensor(True)``, ``THMeanStdNormalize``).

This is what ``data/isaid.py`` is checked against (``alignment/check_data.py``), so it shares none of its
transform or decoding code: windows come from ``sliding_window`` below (the official arithmetic on
numpy meshgrids, boxes ``(x1, y1, x2, y2)``), crops and augmentation work on Pillow images
(``crop``, ``transpose``, ``rotate(expand=True)``, pad by pasting), colours are decoded by the official
matrix product and per-class loop, and normalisation uses torch ops. Validation reads with
scikit-image's ``imread`` as the official ``ImageFolderDataset`` (gray images stacked to 3 channels).

Deviations from the official code: the random generator is an explicit ``random.Random`` (official: the
global ``random`` module, drawn in the same order); files are sorted (official: ``glob`` order).
"""

from __future__ import annotations

import math
import os
import random
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image

from rsrepro.isaid import MEAN, PALETTE, STD

MASK_SUFFIX = "_instance_color_RGB.png"


def sliding_window(input_size: Tuple[int, int], kernel_size: Tuple[int, int], stride: int) -> np.ndarray:
    """Official SimpleCV windows as boxes ``(x1, y1, x2, y2)``, y outer, x inner."""
    ih, iw = input_size
    kh, kw = kernel_size
    kh, kw = min(kh, ih), min(kw, iw)

    def count(size: int, kernel: int) -> int:
        steps = math.ceil((size - kernel) / stride)
        return steps if steps * stride + kernel >= size else steps + 1

    xs, ys = np.meshgrid(np.arange(count(iw, kw) + 1), np.arange(count(ih, kh) + 1))
    xmin, ymin = (xs * stride).ravel(), (ys * stride).ravel()
    xmin_shift = np.where(xmin + kw > iw, iw - xmin - kw, 0)
    ymin_shift = np.where(ymin + kh > ih, ih - ymin - kh, 0)
    return np.stack([xmin + xmin_shift, ymin + ymin_shift, np.minimum(xmin + kw, iw),
                     np.minimum(ymin + kh, ih)], axis=1)


def remove_color_map(mask_rgb: np.ndarray) -> np.ndarray:
    """Official ``RemoveColorMap``: key = mask @ (1, 2, 3); per palette class, add label where equal."""
    mapping = np.array([1, 2, 3]).reshape((3, 1))
    keys = np.matmul(np.asarray(PALETTE), mapping).squeeze()
    q = np.matmul(mask_rgb, mapping).squeeze(axis=2)
    out = np.zeros_like(q)
    for label, key in enumerate(keys):
        out += np.where(q == key, label * np.ones_like(q), np.zeros_like(q))
    return out.astype(np.uint8)


def _pad(image: Image.Image, height: int, width: int, fill) -> Image.Image:
    canvas = Image.new(image.mode, (width, height), fill)
    canvas.paste(image, (0, 0))
    return canvas


def normalize(image: Image.Image) -> torch.Tensor:
    """``ToTensor(True)`` (255 * to_tensor) then ``THMeanStdNormalize`` in float32."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    x = 255.0 * x.to(torch.float32).div(255)
    mean = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return (x - mean) / std


class ISAIDPatchReference:
    """Official training samples: every window of every image, official augmentation."""

    def __init__(self, image_dir: str, mask_dir: str, patch_size: int = 896, stride: int = 512,
                 augment: bool = True) -> None:
        self.patch_size, self.augment = patch_size, augment
        names = sorted(n for n in os.listdir(image_dir) if n.endswith(".png") and "_instance_" not in n)
        self.items: List[Tuple[str, str, Tuple[int, int, int, int]]] = []
        for name in names:
            image_path = os.path.join(image_dir, name)
            mask_path = os.path.join(mask_dir, name.replace(".png", MASK_SUFFIX))
            with Image.open(image_path) as image:
                boxes = sliding_window((image.height, image.width), (patch_size, patch_size), stride)
            self.items += [(image_path, mask_path, tuple(int(v) for v in box)) for box in boxes]

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, rng: random.Random) -> Tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path, box = self.items[index]
        image = Image.open(image_path).convert("RGB").crop(box)
        mask_rgb = Image.open(mask_path).convert("RGB").crop(box)
        mask = Image.fromarray(remove_color_map(np.array(mask_rgb)))
        if self.augment:
            if rng.random() < 0.5:
                image, mask = image.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
            if rng.random() < 0.5:
                image, mask = image.transpose(Image.FLIP_TOP_BOTTOM), mask.transpose(Image.FLIP_TOP_BOTTOM)
            k = rng.choice((0, 1, 2, 3))
            if k:
                image, mask = image.rotate(90 * k, expand=True), mask.rotate(90 * k, expand=True)
        size = self.patch_size
        if (image.height, image.width) != (size, size):
            image, mask = _pad(image, size, size, (0, 0, 0)), _pad(mask, size, size, 255)
        return normalize(image), torch.from_numpy(np.array(mask, copy=True))


class ISAIDFolderReference:
    """Official evaluation reader (``ImageFolderDataset``): whole image (uint8 HxWx3) and decoded mask."""

    def __init__(self, image_dir: str, mask_dir: str) -> None:
        self.image_dir, self.mask_dir = image_dir, mask_dir
        self.names = sorted(n for n in os.listdir(image_dir) if n.endswith(".png") and "_instance_" not in n)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray, str]:
        from skimage.io import imread

        name = self.names[index]
        image = imread(os.path.join(self.image_dir, name))
        mask = remove_color_map(imread(os.path.join(self.mask_dir, name.replace(".png", MASK_SUFFIX))))
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=2)
        return image, mask, name
