"""CDD change detection — PyTorch reference loaders in the style of the official code.

Official code followed:
- DASNet (github lehaifeng/DASNet, 2020 tree bb31356 and the 2025 re-upload): ``dataset/rs.py`` (``Dataset``:
  list file split on one space, ``Image.open`` without ``convert``, ``transform_med`` =
  ``utils/transforms.py::Scale((256, 256))`` on images AND label (bilinear), ``data_transform``: RGB -> BGR,
  float64 minus ``cfg.T0_MEAN_VALUE`` / ``T1_MEAN_VALUE``, transpose, ``torch.from_numpy(...).float()``;
  label ``np.array(label, dtype=np.int32)`` -> ``long``), ``cfg/CDD.py`` and ``cfg/BCDD.py`` (means), and
  ``train.py`` of the 2025 tree (``torch.where(label > 1, 1, 0)`` in the training / validation loop).
- DASNet-V2 (github silence-tang/DASNet-V2): the same ``Dataset``; labels converted once by
  ``example/CDD/script.ipynb`` (``cv2.imread(path, flags=0) >= 128`` written as 0/1 files) and then used as
  they are.
- LSNet (github qaz670756/LSNet ``utils/dataloaders.py``: sorted ``os.listdir`` of ``<split>/A``, label
  ``<split>/OUT_binary/<name with .jpg -> .png>``, Pillow) with SNUNet-CD's ``utils/transforms.py``
  (``RandomHorizontalFlip``, ``RandomVerticalFlip``, ``RandomFixRotate``, ``ToTensor``: float32 images,
  mask / 255).

This is the reference ``data/cdd.py`` is checked against, so it shares none of its code: it parses the list
itself, decodes with Pillow, resizes with ``Image.resize``, converts with numpy/torch the official way, and
augments with Pillow ``transpose`` (the package uses numpy flips and ``np.rot90``). It imports no paddle and
registers nothing.

Deviations from the official code:
- the label rule is applied inside the dataset (``label_rule``) instead of the training loop:
  "gt1" = 2025 DASNet ``label > 1``; "ge128" = DASNet-V2's conversion ``>= 128``; "raw" = the file's values
  as they are (DASNet-V2 reading its converted 0/1 files);
- a malformed list line raises ``ValueError`` naming the line (the official ``except`` branch reuses the
  previous line's image names);
- the random generator is an explicit ``random.Random`` (the official code uses the global ``random``);
  ``load(index, rng)`` makes the same draws in the same order.
"""

from __future__ import annotations

import os
import random
from typing import Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils import data

__all__ = ["CDD_MEANS", "BCDD_MEANS", "DASNetCDDReference", "LSNetCDDReference"]

# (T0_MEAN_VALUE, T1_MEAN_VALUE) of the official cfg/CDD.py and cfg/BCDD.py (BGR order).
CDD_MEANS = ((87.72, 100.2, 90.43), (120.24, 127.93, 121.18))
BCDD_MEANS = ((98.62, 113.27, 123.59), (117.38, 123.09, 123.20))


class Scale:
    """``utils/transforms.py::Scale`` with a (w, h) size: ``img.resize(size, BILINEAR)``."""

    def __init__(self, size: Tuple[int, int], interpolation: int = Image.BILINEAR) -> None:
        self.size = size
        self.interpolation = interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.resize(self.size, self.interpolation)


class DASNetCDDReference(data.Dataset):
    """Official DASNet / DASNet-V2 ``dataset/rs.py::Dataset`` (list layout).

    Args:
        img_path (str): folder the list's paths are relative to (``cfg.TRAIN_DATA_PATH``).
        label_path (str): folder the label paths are relative to (``cfg.TRAIN_LABEL_PATH``, the same).
        file_name_txt_path (str): the list file.
        split_flag (str): "train" or "val" (the official code reads both the same way).
        transform (bool): apply ``data_transform`` (BGR, means, CHW, tensors). Default True.
        transform_med: PIL transform of images and label; default ``Scale((256, 256))`` as the official
            ``train.py``; None for none.
        means: (T0, T1) BGR means. Default CDD.
        label_rule (str): "gt1" (default, 2025 DASNet), "ge128" (DASNet-V2 conversion) or "raw".

    ``dataset[i]`` returns ``(img1, img2, label, filename, height, width)`` like the official code.
    """

    def __init__(
        self,
        img_path: str,
        label_path: str,
        file_name_txt_path: str,
        split_flag: str = "val",
        transform: bool = True,
        transform_med: object = "default",
        means: Sequence[Sequence[float]] = CDD_MEANS,
        label_rule: str = "gt1",
    ) -> None:
        if label_rule not in ("gt1", "ge128", "raw"):
            raise ValueError(f"label_rule must be 'gt1', 'ge128' or 'raw', got {label_rule!r}")
        self.label_path = label_path
        self.img_path = img_path
        self.img_txt_path = file_name_txt_path
        self.flag = split_flag
        self.transform = transform
        self.transform_med = Scale((256, 256)) if transform_med == "default" else transform_med
        self.t0_mean, self.t1_mean = means
        self.label_rule = label_rule
        self.img_label_path_pairs = self.get_img_label_path_pairs()

    def get_img_label_path_pairs(self) -> dict:
        img_label_pair_list = {}
        with open(self.img_txt_path) as handle:
            for idx, did in enumerate(handle):
                try:
                    image1_name, image2_name, mask_name = did.strip("\n").split(" ")
                except ValueError as exc:
                    raise ValueError(f"{self.img_txt_path}:{idx + 1}: not three paths: {did!r}") from exc
                img1_file = os.path.join(self.img_path, image1_name)
                img2_file = os.path.join(self.img_path, image2_name)
                lbl_file = os.path.join(self.label_path, mask_name)
                img_label_pair_list.setdefault(idx, [img1_file, img2_file, lbl_file, image2_name])
        return img_label_pair_list

    def data_transform(self, img1: np.ndarray, img2: np.ndarray, lbl: np.ndarray):
        img1 = img1[:, :, ::-1]  # RGB -> BGR
        img1 = img1.astype(np.float64)
        img1 -= self.t0_mean
        img1 = img1.transpose(2, 0, 1)
        img1 = torch.from_numpy(img1).float()
        img2 = img2[:, :, ::-1]
        img2 = img2.astype(np.float64)
        img2 -= self.t1_mean
        img2 = img2.transpose(2, 0, 1)
        img2 = torch.from_numpy(img2).float()
        lbl = torch.from_numpy(lbl).long()
        return img1, img2, lbl

    def binarize(self, label: torch.Tensor) -> torch.Tensor:
        if self.label_rule == "gt1":
            return torch.where(label > 1, torch.ones_like(label), torch.zeros_like(label))
        if self.label_rule == "ge128":
            return (label >= 128).long()
        return label

    def __getitem__(self, index: int):
        img1_path, img2_path, label_path, filename = self.img_label_path_pairs[index]
        img1 = Image.open(img1_path)
        img2 = Image.open(img2_path)
        height, width, _ = np.array(img1, dtype=np.uint8).shape
        if self.transform_med is not None:
            img1 = self.transform_med(img1)
            img2 = self.transform_med(img2)
        img1 = np.array(img1, dtype=np.uint8)
        img2 = np.array(img2, dtype=np.uint8)
        label = Image.open(label_path)
        if self.transform_med is not None:
            label = self.transform_med(label)
        label = np.array(label, dtype=np.int32)
        if self.transform:
            img1, img2, label = self.data_transform(img1, img2, label)
            label = self.binarize(label)
        return img1, img2, label, str(filename), int(height), int(width)

    def __len__(self) -> int:
        return len(self.img_label_path_pairs)


class LSNetCDDReference(data.Dataset):
    """Official LSNet ``CDDloader`` over ``full_path_loader`` / ``full_test_loader`` (folder layout).

    Args:
        data_dir (str): dataset root ending with a path separator, as the official ``opt.dataset_dir``
            (one is added if missing).
        split (str): "train", "val" or "test".
        aug (bool): SNUNet-CD ``train_transforms`` (flips + rot90) instead of ``test_transforms``.

    ``load(index, rng)`` returns ``(img1, img2, label, name)``: float32 3xHxW raw images and the float32
    mask / 255; ``__getitem__`` draws from ``self.rng``.
    """

    def __init__(self, data_dir: str, split: str = "train", aug: bool = False) -> None:
        self.data_dir = data_dir if data_dir.endswith(os.sep) else data_dir + os.sep
        names = [i for i in os.listdir(self.data_dir + split + "/A/") if not i.startswith(".")]
        names.sort()
        self.full_load = {
            cp: {"image": [self.data_dir + split + "/", name],
                 "label": self.data_dir + split + "/OUT_binary/" + name}
            for cp, name in enumerate(names)
        }  # fmt: skip
        self.aug = aug
        self.rng = random.Random()

    def __len__(self) -> int:
        return len(self.full_load)

    def __getitem__(self, index: int):
        return self.load(index, self.rng)

    def load(self, index: int, rng: random.Random):
        directory, name = self.full_load[index]["image"]
        img1 = Image.open(directory + "A/" + name)
        img2 = Image.open(directory + "B/" + name)
        label = Image.open(self.full_load[index]["label"].replace(".jpg", ".png"))
        if self.aug:
            if rng.random() < 0.5:  # RandomHorizontalFlip
                img1, img2, label = (x.transpose(Image.FLIP_LEFT_RIGHT) for x in (img1, img2, label))
            if rng.random() < 0.5:  # RandomVerticalFlip
                img1, img2, label = (x.transpose(Image.FLIP_TOP_BOTTOM) for x in (img1, img2, label))
            if rng.random() < 0.75:  # RandomFixRotate
                rotate_degree = rng.choice([Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270])
                img1, img2, label = (x.transpose(rotate_degree) for x in (img1, img2, label))
        # ToTensor
        img1 = torch.from_numpy(np.array(img1).astype(np.float32).transpose((2, 0, 1))).float()
        img2 = torch.from_numpy(np.array(img2).astype(np.float32).transpose((2, 0, 1))).float()
        mask = torch.from_numpy(np.array(label).astype(np.float32) / 255.0).float()
        return img1, img2, mask, name
