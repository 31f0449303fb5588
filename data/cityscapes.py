"""Cityscapes for DANet: constants, labelId -> trainId mapping, file discovery and the dataset.

Layout read (the real one; see docs/datasets.md)::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png      8-bit RGB
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png       ids 0..33 (mapped here)
                                                     _gtFine_trainIds.png        DANet 2019 lists
                                                     _gtFine_labelTrainIds.png   PaddleSeg / cityscapesscripts

``labelIds`` files are mapped to the 19 trainIds on the fly with a 256-entry lookup table (every id that
is not one of the 19 evaluated classes, and 255, becomes 255 = ignore). ``trainIds`` / ``labelTrainIds``
files already hold 0..18 and 255 and are used as they are. Optionally a DANet-2019-style list file
(``train_fine.txt``: ``<image path>\\t<label path>`` per line, relative to ``root``) replaces the folder
walk.

The class is framework-free: ``__getitem__`` returns numpy arrays (float32 CHW image, int64 HW label with
255 = ignore), which both the Paddle and the torch side wrap in their own loaders.

Deviations from the official code (junfu1115/DANet, ``encoding/datasets/cityscapes.py`` and ``base.py``):
- the official 2019 code reads only list files with ``*_gtFine_trainIds.png``; the 2020 code walks the
  folders and maps ``*_gtFine_labelIds.png`` with ``np.digitize``. Both are accepted here.
- bad input is an error naming the file: a missing label (the official code prints a line and skips
  the image), a label/image size mismatch (official: silently mis-cropped pairs), a labelId outside
  0..33 (official: a bare ``assert``; 255 is accepted here and means ignore), a trainId outside 0..18/255
  (official: passed on to the loss). Non-RGB images are refused unless ``convert_images=True``.
- file order is sorted (the official ``os.walk`` order depends on the file system).
"""

from __future__ import annotations

import os
import random
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from .errors import DatasetError
from .io import read_image, read_label
from .registry import DATASETS
from .seeding import EpochSeededSamples
from .transforms import build_transforms, danet_train_transforms, val_transforms

__all__ = [
    "NUM_CLASSES",
    "IGNORE_INDEX",
    "CLASS_NAMES",
    "PALETTE",
    "TRAIN_ID_TO_LABEL_ID",
    "LABELS",
    "LABEL_ID_TO_TRAIN_ID",
    "LABEL_ID_COLORS",
    "CityscapesPair",
    "CityscapesDataset",
    "label_ids_to_train_ids",
    "check_train_ids",
    "colorize_train_ids",
    "label_kind_from_name",
    "find_cityscapes_pairs",
    "read_list_file",
]

NUM_CLASSES = 19
IGNORE_INDEX = 255

CLASS_NAMES: Tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
    "bicycle",
)  # fmt: skip

# labelId of each trainId 0..18 (datasets.md).
TRAIN_ID_TO_LABEL_ID: Tuple[int, ...] = (
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
)  # fmt: skip

# (labelId, name, trainId, RGB colour) for every labelId 0..33, as in cityscapesscripts' labels.py.
# The colours are those of the *_gtFine_color.png files (license plate, id -1, is never drawn in the
# id images and is left out).
LABELS: Tuple[Tuple[int, str, int, Tuple[int, int, int]], ...] = (
    (0, "unlabeled", 255, (0, 0, 0)),
    (1, "ego vehicle", 255, (0, 0, 0)),
    (2, "rectification border", 255, (0, 0, 0)),
    (3, "out of roi", 255, (0, 0, 0)),
    (4, "static", 255, (0, 0, 0)),
    (5, "dynamic", 255, (111, 74, 0)),
    (6, "ground", 255, (81, 0, 81)),
    (7, "road", 0, (128, 64, 128)),
    (8, "sidewalk", 1, (244, 35, 232)),
    (9, "parking", 255, (250, 170, 160)),
    (10, "rail track", 255, (230, 150, 140)),
    (11, "building", 2, (70, 70, 70)),
    (12, "wall", 3, (102, 102, 156)),
    (13, "fence", 4, (190, 153, 153)),
    (14, "guard rail", 255, (180, 165, 180)),
    (15, "bridge", 255, (150, 100, 100)),
    (16, "tunnel", 255, (150, 120, 90)),
    (17, "pole", 5, (153, 153, 153)),
    (18, "polegroup", 255, (153, 153, 153)),
    (19, "traffic light", 6, (250, 170, 30)),
    (20, "traffic sign", 7, (220, 220, 0)),
    (21, "vegetation", 8, (107, 142, 35)),
    (22, "terrain", 9, (152, 251, 152)),
    (23, "sky", 10, (70, 130, 180)),
    (24, "person", 11, (220, 20, 60)),
    (25, "rider", 12, (255, 0, 0)),
    (26, "car", 13, (0, 0, 142)),
    (27, "truck", 14, (0, 0, 70)),
    (28, "bus", 15, (0, 60, 100)),
    (29, "caravan", 255, (0, 0, 90)),
    (30, "trailer", 255, (0, 0, 110)),
    (31, "train", 16, (0, 80, 100)),
    (32, "motorcycle", 17, (0, 0, 230)),
    (33, "bicycle", 18, (119, 11, 32)),
)
MAX_LABEL_ID = 33

# Colour of each trainId (the usual Cityscapes visualisation palette).
PALETTE: Tuple[Tuple[int, int, int], ...] = tuple(
    entry[3] for entry in sorted((e for e in LABELS if e[2] != IGNORE_INDEX), key=lambda e: e[2])
)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _build_label_lut() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for train_id, label_id in enumerate(TRAIN_ID_TO_LABEL_ID):
        lut[label_id] = train_id
    return lut


# 256-entry lookup table labelId -> trainId; unlisted ids (and 255) -> 255.
LABEL_ID_TO_TRAIN_ID: np.ndarray = _frozen(_build_label_lut())
# Values a *_labelIds.png may hold: the 34 ids and 255 (ignore, written by some tools).
_VALID_LABEL_ID = _frozen(np.isin(np.arange(256), list(range(MAX_LABEL_ID + 1)) + [IGNORE_INDEX]))
_VALID_TRAIN_ID = _frozen(np.isin(np.arange(256), list(range(NUM_CLASSES)) + [IGNORE_INDEX]))
# RGB colour of each labelId (for *_gtFine_color.png); unused entries black.
LABEL_ID_COLORS: np.ndarray = _frozen(
    np.array([LABELS[i][3] if i <= MAX_LABEL_ID else (0, 0, 0) for i in range(256)], dtype=np.uint8)
)
_TRAIN_ID_COLORS = _frozen(
    np.array([PALETTE[i] if i < NUM_CLASSES else (0, 0, 0) for i in range(256)], dtype=np.uint8)
)

LABEL_TYPES = ("auto", "labelIds", "trainIds", "labelTrainIds")
# Label file suffixes per encoding; "auto" tries labelIds first (the raw annotation, always shipped).
_SUFFIXES = {
    "labelIds": ("_gtFine_labelIds.png",),
    "trainIds": ("_gtFine_trainIds.png", "_gtFine_labelTrainIds.png"),
}
_IMAGE_SUFFIX = "_leftImg8bit.png"


def _bad_values(values: np.ndarray, valid: np.ndarray) -> List[int]:
    present = np.bincount(values.ravel(), minlength=256) > 0
    return [int(v) for v in np.flatnonzero(present & ~valid)]


def label_ids_to_train_ids(label_ids: np.ndarray, path: str | None = None) -> np.ndarray:
    """Map a uint8 labelId map to trainIds (uint8, 255 = ignore), refusing ids outside 0..33 and 255."""
    label_ids = np.asarray(label_ids)
    if label_ids.dtype != np.uint8:
        raise DatasetError(f"labelIds map must be uint8, got {label_ids.dtype}: {path or '<array>'}")
    train_ids = LABEL_ID_TO_TRAIN_ID[label_ids]
    if not _VALID_LABEL_ID[label_ids].all():
        bad = _bad_values(label_ids, _VALID_LABEL_ID)
        raise DatasetError(
            f"labelIds file holds values {bad[:10]}{' ...' if len(bad) > 10 else ''} that are no Cityscapes "
            f"labelId (expected 0..{MAX_LABEL_ID} or 255) — is this a trainIds or colour file? "
            f"{path or '<array>'}"
        )
    return train_ids


def check_train_ids(train_ids: np.ndarray, path: str | None = None) -> np.ndarray:
    """Return ``train_ids`` after checking every value is 0..18 or 255."""
    train_ids = np.asarray(train_ids)
    if train_ids.dtype != np.uint8:
        raise DatasetError(f"trainIds map must be uint8, got {train_ids.dtype}: {path or '<array>'}")
    if not _VALID_TRAIN_ID[train_ids].all():
        bad = _bad_values(train_ids, _VALID_TRAIN_ID)
        raise DatasetError(
            f"trainIds file holds values {bad[:10]}{' ...' if len(bad) > 10 else ''} outside 0..18 and "
            f"255 — is this a labelIds file? {path or '<array>'}"
        )
    return train_ids


def colorize_train_ids(train_ids: np.ndarray) -> np.ndarray:
    """Colour a trainId map (H x W) with the Cityscapes palette; ignore (255) is black."""
    return _TRAIN_ID_COLORS[np.asarray(train_ids, dtype=np.uint8)]


def label_kind_from_name(path: str) -> str | None:
    """'labelIds' or 'trainIds' from a Cityscapes label file name, None if the name does not say."""
    name = os.path.basename(path).lower()
    if name.endswith("trainids.png"):  # also *_labelTrainIds.png
        return "trainIds"
    if name.endswith("labelids.png"):
        return "labelIds"
    return None


def _canonical_label_type(label_type: str) -> str:
    if label_type not in LABEL_TYPES:
        raise DatasetError(f"label_type must be one of {LABEL_TYPES}, got {label_type!r}")
    return "trainIds" if label_type == "labelTrainIds" else label_type


class CityscapesPair(NamedTuple):
    """One sample: image path, label path and the label encoding ('labelIds' or 'trainIds')."""

    image: str
    label: str
    kind: str


def find_cityscapes_pairs(root: str, split: str, label_type: str = "auto") -> List[CityscapesPair]:
    """Walk ``root/leftImg8bit/<split>/<city>/`` and pair every image with its gtFine label.

    Args:
        root: dataset root (the folder holding ``leftImg8bit`` and ``gtFine``).
        split: sub-folder name, e.g. "train", "val", "test".
        label_type: "labelIds", "trainIds" (also finds ``*_labelTrainIds.png``; "labelTrainIds" is an
            alias) or "auto" (per image: labelIds if present, else trainIds, else labelTrainIds).

    Returns pairs sorted by city and file name. Raises DatasetError for a missing root or split folder,
    an empty split, or images without a label (all of them counted, the first few listed).
    """
    label_type = _canonical_label_type(label_type)
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"Cityscapes root folder not found: {root}")
    image_dir = os.path.join(root, "leftImg8bit", split)
    label_dir = os.path.join(root, "gtFine", split)
    for folder, what in ((image_dir, "image"), (label_dir, "label")):
        if not os.path.isdir(folder):
            hint = ""
            if os.path.isdir(os.path.join(root, "cityscapes", "leftImg8bit")):
                hint = f" (root has a 'cityscapes' sub-folder: pass root={os.path.join(root, 'cityscapes')})"
            raise DatasetError(f"Cityscapes {what} folder for split '{split}' not found: {folder}{hint}")

    kinds = ("labelIds", "trainIds") if label_type == "auto" else (label_type,)
    pairs: List[CityscapesPair] = []
    missing: List[Tuple[str, List[str]]] = []
    for city in sorted(os.listdir(image_dir)):
        city_dir = os.path.join(image_dir, city)
        if not os.path.isdir(city_dir):
            continue
        for name in sorted(os.listdir(city_dir)):
            if not name.endswith(_IMAGE_SUFFIX):
                continue
            stem = name[: -len(_IMAGE_SUFFIX)]
            tried: List[str] = []
            found: CityscapesPair | None = None
            for kind in kinds:
                for suffix in _SUFFIXES[kind]:
                    candidate = os.path.join(label_dir, city, stem + suffix)
                    tried.append(candidate)
                    if os.path.isfile(candidate):
                        found = CityscapesPair(os.path.join(city_dir, name), candidate, kind)
                        break
                if found:
                    break
            if found:
                pairs.append(found)
            else:
                missing.append((os.path.join(city_dir, name), tried))
    if missing:
        image, tried = missing[0]
        raise DatasetError(
            f"{len(missing)} image(s) in {image_dir} have no label; first: {image} "
            f"(looked for {', '.join(tried)})"
        )
    if not pairs:
        raise DatasetError(
            f"no Cityscapes images found for split '{split}': looked for "
            f"{os.path.join(image_dir, '<city>', '*' + _IMAGE_SUFFIX)}"
        )
    return pairs


def read_list_file(list_file: str, root: str, label_type: str = "auto") -> List[CityscapesPair]:
    """Read a DANet-2019-style list: one ``<image>\\t<label>`` line per sample, paths relative to ``root``.

    A line without a tab is accepted if it splits on whitespace into exactly two paths. Blank lines are
    skipped. With ``label_type="auto"`` the encoding comes from each label's name
    (``*labelIds.png`` / ``*trainIds.png``). Errors name the list file and the line number.
    """
    label_type = _canonical_label_type(label_type)
    list_file = os.fspath(list_file)
    if not os.path.isfile(list_file):
        raise DatasetError(f"list file not found: {list_file}")
    pairs: List[CityscapesPair] = []
    with open(list_file, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
            if len(fields) != 2 or not all(fields):
                raise DatasetError(
                    f"{list_file}:{number}: expected '<image path><TAB><label path>', "
                    f"found {len(fields)} field(s): {line!r}"
                )
            image, label = (os.path.join(root, f) for f in fields)
            for path, what in ((image, "image"), (label, "label")):
                if not os.path.isfile(path):
                    raise DatasetError(f"{list_file}:{number}: {what} file not found: {path}")
            kind = label_kind_from_name(label) if label_type == "auto" else label_type
            if kind is None:
                raise DatasetError(
                    f"{list_file}:{number}: cannot tell the label encoding from the name {fields[1]!r}; "
                    f"pass label_type='labelIds' or 'trainIds'"
                )
            pairs.append(CityscapesPair(image, label, kind))
    if not pairs:
        raise DatasetError(f"list file has no entries: {list_file}")
    return pairs


def load_train_ids(pair: CityscapesPair, image_shape: Tuple[int, ...] | None = None) -> np.ndarray:
    """Read a pair's label as trainIds (uint8, 255 = ignore), checking values and, if given, the size."""
    label = read_label(pair.label)
    if image_shape is not None and label.shape != tuple(image_shape[:2]):
        raise DatasetError(
            f"label size {label.shape[1]}x{label.shape[0]} (WxH) differs from image size "
            f"{image_shape[1]}x{image_shape[0]}: label {pair.label}, image {pair.image}"
        )
    if pair.kind == "labelIds":
        return label_ids_to_train_ids(label, pair.label)
    return check_train_ids(label, pair.label)


TransformFn = Callable[..., Tuple[np.ndarray, np.ndarray | None]]


@DATASETS.register("cityscapes")
class CityscapesDataset(EpochSeededSamples):
    """Cityscapes (19 classes) for DANet, returning numpy arrays.

    Args:
        root (str): dataset root holding ``leftImg8bit/`` and ``gtFine/``.
        split (str): "train", "val" or "test" (the folder read when no ``list_file`` is given).
        mode (str | None): "train" (random augmentation) or "val" (deterministic). Default: "train"
            for split "train", else "val".
        list_file (str | None): DANet-2019-style list (``<image>\\t<label>`` per line, paths relative to
            ``root``; a relative list path is looked up as given, then under ``root``). Default None:
            walk the split folder.
        label_type (str): "auto" (default), "labelIds", "trainIds" (alias "labelTrainIds").
        transform: callable ``(image uint8 HWC, trainIds uint8 HW, rng) -> (image, label)``, or a
            transform config (list / dict, see ``rsrepro.data.transforms.build_transforms``). Default None:
            ``danet_train_transforms(base_size, crop_size)`` in train mode, ``val_transforms()``
            (normalise only, full resolution) in val mode.
        base_size (int): base size of the default train transform. Default 1024 (official README).
        crop_size (int): crop of the default train transform. Default 768.
        seed (int | None): with an int, sample ``i`` of epoch ``e`` draws its augmentation from
            ``random.Random(f"{seed}:{e}:{i}")`` — reproducible, and different in every DataLoader
            worker and epoch (call ``set_epoch``). None (default): a fresh OS-seeded generator per sample.
        convert_images (bool): accept non-RGB images by converting them like the official code (with
            a warning per file) instead of raising. Default False.

    ``dataset[i]`` returns ``(image float32 3xHxW normalised, label int64 HxW, 255 = ignore)``.
    ``files`` lists ``(image_path, label_path)`` in order; ``pairs`` also gives each label's encoding.
    """

    NUM_CLASSES = NUM_CLASSES
    IGNORE_INDEX = IGNORE_INDEX
    CLASS_NAMES = CLASS_NAMES
    PALETTE = PALETTE

    def __init__(
        self,
        root: str,
        split: str = "train",
        mode: str | None = None,
        list_file: str | None = None,
        label_type: str = "auto",
        transform: TransformFn | Sequence[Any] | Dict[str, Any] | None = None,
        base_size: int = 1024,
        crop_size: int = 768,
        seed: int | None = None,
        convert_images: bool = False,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise DatasetError(f"split must be 'train', 'val' or 'test', got {split!r}")
        mode = mode if mode is not None else ("train" if split == "train" else "val")
        if mode not in ("train", "val"):
            raise DatasetError(f"mode must be 'train' or 'val', got {mode!r}")
        self.root = os.fspath(root)
        self.split = split
        self.mode = mode
        self.seed = seed
        self.epoch = 0
        self.convert_images = convert_images
        if list_file is not None:
            list_path = os.fspath(list_file)
            if not os.path.isabs(list_path) and not os.path.isfile(list_path):
                list_path = os.path.join(self.root, list_path)
            if not os.path.isdir(self.root):
                raise DatasetError(f"Cityscapes root folder not found: {self.root}")
            self.pairs = read_list_file(list_path, self.root, label_type)
        else:
            self.pairs = find_cityscapes_pairs(self.root, split, label_type)
        self.files: List[Tuple[str, str]] = [(p.image, p.label) for p in self.pairs]

        if transform is None:
            transform = (
                danet_train_transforms(base_size=base_size, crop_size=crop_size)
                if mode == "train"
                else val_transforms()
            )
        elif not callable(transform):
            transform = build_transforms(transform)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def read_pair(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` untransformed: image (uint8 HxWx3 RGB), trainIds (uint8 HxW, 255 = ignore)."""
        pair = self.pairs[index]
        image = read_image(pair.image, convert=self.convert_images)
        return image, load_train_ids(pair, image.shape)

    def load(self, index: int, rng: random.Random | None = None) -> Tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` transformed with draws from ``rng`` (default ``rng_for(index)``)."""
        image, label = self.read_pair(index)
        return self.transform(image, label, rng if rng is not None else self.rng_for(index))

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return self.load(index % len(self))

    def validate(self) -> None:
        """Read every pair once (images, labels, sizes, values) and raise on the first bad file."""
        for index in range(len(self)):
            self.read_pair(index)

    def __repr__(self) -> str:
        return (
            f"CityscapesDataset(root={self.root!r}, split={self.split!r}, mode={self.mode!r}, "
            f"samples={len(self)})"
        )
