"""Cityscapes for DANet — PyTorch reference in the style of the official code.

Official code: https://github.com/junfu1115/DANet — ``encoding/datasets/base.py`` (``_sync_transform``,
``_val_sync_transform``) and ``encoding/datasets/cityscapes.py`` of the 2019 tree (commit 97f0c42:
list files of ``*_gtFine_trainIds.png``, 255 -> -1) and of the 2020 tree (``_class_to_index``:
``np.digitize`` of labelIds over the known ids, then a key array), input transform
``ToTensor() + Normalize(ImageNet)``.

This is the reference that ``data/cityscapes.py`` + ``data/transforms.py`` are checked against, so it
shares none of their transform code: it works on Pillow images the way the official code does
(``transpose``, ``resize``, ``ImageOps.expand``, ``crop``), maps labelIds AFTER the geometric transform
with ``np.digitize`` (the framework-free side maps BEFORE, with a lookup table, and pads with 255), and
normalises with torch ops. It reuses only the file discovery and the checked file reading of ``data``.

Args of ``CityscapesSegmentation``:
    root (str): dataset root (``leftImg8bit/``, ``gtFine/``).
    split (str): "train", "val" or "test". Default "train".
    mode (str | None): "train" (``_sync_transform``), "val" (official quick validation: short side
        -> crop_size, centre crop), "testval" (no geometric transform). Default: split.
    transform (callable | None): PIL image -> tensor. Default: ``input_transform`` (ToTensor + Normalize
        written with torch ops).
    target_transform (callable | None): applied to the label tensor. Default None.
    base_size (int): Default 1024. crop_size (int): Default 768.
    scale (bool): random short side in [0.75, 2.0] x base_size (official ``--scale``). Default True.
    list_file (str | None), label_type (str): as in ``rsrepro.data.cityscapes.CityscapesDataset``.
    gaussian_blur, color_jitter (bool): the Paddle 1.x port's extras (probability 0.3). Default False.
    ignore_index (int): value of ignored pixels in the returned label. Default 255 (the package's
        convention); the official code returns -1 (pass ignore_index=-1).

Draws (from the ``random.Random`` given to ``load``, or ``self.rng`` in ``__getitem__``), in order:
flip ``random() < 0.5``; short side ``randint(int(0.75 * base), int(2.0 * base))`` (if ``scale``);
crop ``x = randint(0, w - crop)``, ``y = randint(0, h - crop)``; then, if enabled, blur ``random() < 0.3``
and ``radius = random()``; jitter ``random() < 0.3`` and four ``uniform(0.75, 1.25)`` for brightness,
colour, contrast, sharpness.

Deviations from the official code:
- the random generator is an explicit ``random.Random`` (the official code uses the global ``random``);
- labelId 255 is accepted (-> ignore); the official ``assert`` fails on it. Other unknown ids raise
  ``DatasetError`` instead of a bare ``AssertionError``;
- ``ignore_index`` defaults to 255 instead of -1 (see Args);
- padding of labelIds uses 0 (unlabeled, as the 2020 code), of trainIds 255 (as the 2019 code).
"""

from __future__ import annotations

import os
import random
from typing import Callable, Tuple

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from torch.utils import data

from rsrepro.data.cityscapes import find_cityscapes_pairs, read_list_file
from rsrepro.data.errors import DatasetError
from rsrepro.data.io import read_image, read_label

__all__ = ["CityscapesSegmentation", "input_transform"]

_MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32)
_STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32)


def input_transform(img: Image.Image) -> torch.Tensor:
    """torchvision ``ToTensor()`` then ``Normalize(ImageNet)``, written with torch ops."""
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255)  # 3, h, w
    return (x - _MEAN[:, None, None]) / _STD[:, None, None]


class CityscapesSegmentation(data.Dataset):
    NUM_CLASS = 19

    def __init__(
        self,
        root: str,
        split: str = "train",
        mode: str | None = None,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        base_size: int = 1024,
        crop_size: int = 768,
        scale: bool = True,
        list_file: str | None = None,
        label_type: str = "auto",
        gaussian_blur: bool = False,
        color_jitter: bool = False,
        ignore_index: int = 255,
    ) -> None:
        self.root = root
        self.split = split
        self.mode = mode if mode is not None else split
        self.transform = transform if transform is not None else input_transform
        self.target_transform = target_transform
        self.base_size = base_size
        self.crop_size = crop_size
        self.scale = scale
        self.gaussian_blur = gaussian_blur
        self.color_jitter = color_jitter
        self.ignore_index = ignore_index
        self.rng = random.Random()
        if list_file is not None:
            if not os.path.isabs(list_file) and not os.path.isfile(list_file):
                list_file = os.path.join(root, list_file)
            pairs = read_list_file(list_file, root, label_type)
        else:
            pairs = find_cityscapes_pairs(root, split, label_type)
        self.images = [p.image for p in pairs]
        self.masks = [p.label for p in pairs]
        self.kinds = [p.kind for p in pairs]
        # labelId -> trainId as the official 2020 code does it: digitize over the sorted known ids
        # (-1 .. 33, plus 255 here), then index a key array; -1 = ignore.
        self._mapping = np.array(list(range(-1, 34)) + [255], dtype=np.int32)
        self._key = np.full(len(self._mapping), -1, dtype=np.int64)
        for train_id, label_id in enumerate((7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                             31, 32, 33)):  # fmt: skip
            self._key[label_id + 1] = train_id

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.load(index, self.rng)

    def load(self, index: int, rng: random.Random) -> Tuple[torch.Tensor, torch.Tensor]:
        img = Image.fromarray(read_image(self.images[index]))
        mask = Image.fromarray(read_label(self.masks[index]))
        if mask.size != img.size:
            raise DatasetError(
                f"label size {mask.size} differs from image size {img.size}: {self.masks[index]}"
            )
        kind = self.kinds[index]
        if self.mode == "train":
            img, mask = self._sync_transform(img, mask, rng, pad_label=0 if kind == "labelIds" else 255)
        elif self.mode == "val":
            img, mask = self._val_sync_transform(img, mask)
        elif self.mode != "testval":
            raise ValueError(f"unknown mode {self.mode!r}")
        img = self.transform(img)
        target = self._mask_transform(mask, kind, self.masks[index])
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def _val_sync_transform(self, img: Image.Image, mask: Image.Image) -> Tuple[Image.Image, Image.Image]:
        outsize = self.crop_size
        w, h = img.size
        if w > h:
            oh = outsize
            ow = int(1.0 * w * oh / h)
        else:
            ow = outsize
            oh = int(1.0 * h * ow / w)
        img = img.resize((ow, oh), Image.BILINEAR)
        mask = mask.resize((ow, oh), Image.NEAREST)
        w, h = img.size
        x1 = int(round((w - outsize) / 2.0))
        y1 = int(round((h - outsize) / 2.0))
        img = img.crop((x1, y1, x1 + outsize, y1 + outsize))
        mask = mask.crop((x1, y1, x1 + outsize, y1 + outsize))
        return img, mask

    def _sync_transform(
        self, img: Image.Image, mask: Image.Image, rng: random.Random, pad_label: int
    ) -> Tuple[Image.Image, Image.Image]:
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            mask = mask.transpose(Image.FLIP_LEFT_RIGHT)
        crop_size = self.crop_size
        if self.scale:
            short_size = rng.randint(int(self.base_size * 0.75), int(self.base_size * 2.0))
        else:
            short_size = self.base_size
        w, h = img.size
        if h > w:
            ow = short_size
            oh = int(1.0 * h * ow / w)
        else:
            oh = short_size
            ow = int(1.0 * w * oh / h)
        img = img.resize((ow, oh), Image.BILINEAR)
        mask = mask.resize((ow, oh), Image.NEAREST)
        if short_size < crop_size:
            padh = crop_size - oh if oh < crop_size else 0
            padw = crop_size - ow if ow < crop_size else 0
            img = ImageOps.expand(img, border=(0, 0, padw, padh), fill=0)
            mask = ImageOps.expand(mask, border=(0, 0, padw, padh), fill=pad_label)
        w, h = img.size
        x1 = rng.randint(0, w - crop_size)
        y1 = rng.randint(0, h - crop_size)
        img = img.crop((x1, y1, x1 + crop_size, y1 + crop_size))
        mask = mask.crop((x1, y1, x1 + crop_size, y1 + crop_size))
        if self.gaussian_blur and rng.random() < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(radius=rng.random()))
        if self.color_jitter and rng.random() < 0.3:
            img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
            img = ImageEnhance.Color(img).enhance(rng.uniform(0.75, 1.25))
            img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.75, 1.25))
            img = ImageEnhance.Sharpness(img).enhance(rng.uniform(0.75, 1.25))
        return img, mask

    def _class_to_index(self, mask: np.ndarray, path: str) -> np.ndarray:
        values = np.unique(mask)
        unknown = values[~np.isin(values, self._mapping)]
        if unknown.size:
            raise DatasetError(f"labelIds file holds unknown ids {unknown.tolist()[:10]}: {path}")
        index = np.digitize(mask.ravel(), self._mapping, right=True)
        return self._key[index].reshape(mask.shape)

    def _mask_transform(self, mask: Image.Image, kind: str, path: str) -> torch.Tensor:
        target = np.array(mask).astype("int64")
        if kind == "labelIds":
            target = self._class_to_index(target, path)
        else:
            bad = np.setdiff1d(np.unique(target), np.r_[np.arange(19), 255])
            if bad.size:
                raise DatasetError(f"trainIds file holds values {bad.tolist()[:10]}: {path}")
            target[target == 255] = -1
        target[target == -1] = self.ignore_index
        return torch.from_numpy(target).long()
