"""Change detection datasets (CDD, BCDD, LEVIR-CD) for DASNet, DASNet-V2 and LSNet.

Layouts read (the real ones; docs/datasets.md, docs/dasnet.md, docs/lsnet.md)::

    list layout (DASNet / DASNet-V2):  <root>/<split>.txt, one sample per line, three paths relative
        to <root> separated by a space:  train/A/00000.jpg train/B/00000.jpg train/OUT/00000.jpg
        Samples keep the list order (the official val.txt is not sorted).
    folder layout (LSNet, LEVIR-CD):   <root>/<split>/A/<name>, <root>/<split>/B/<name>,
        <root>/<split>/<label_dir>/<stem>.<ext>; samples = SORTED listing of A (hidden files skipped),
        as the official LSNet ``full_path_loader``. CDD: label_dir "OUT" (JPEG) or "OUT_binary" (the
        Otsu PNGs of ``tools/prepare_cdd_binary.py``); LEVIR-CD: label_dir "label" (1024x1024 PNGs).
    CDD (Lebedev et al.): 256x256 RGB JPEGs, 10000 train / 3000 val / 3000 test (val.txt lists 2998).

Labels. Every label file is classified when it is read (``inspect_label``): "0-255" (largest value >=
``ZERO_ONE_MAX + 1``: the raw CDD JPEGs, values near 0 and 255 with JPEG noise, and OUT_binary / LEVIR
PNGs), "0-1" (largest value <= ``ZERO_ONE_MAX`` = 3: DASNet-V2's converted 0/1 files, which are JPEGs
too and so reach 2), or "blank" (all zero: no change, either encoding). Binarisation: 0-255 -> value >=
``threshold`` (default 128, the DASNet-V2 rule; ``threshold=2`` reproduces the 2025 official DASNet's
``label > 1``, which also takes the JPEG halo around every change: +18.5 % changed pixels on the
synthetic CDD, labels at JPEG quality 75); 0-1 -> value >= 1. (DASNet-V2's 0/1 JPEGs, written by
``cv2.imwrite`` at quality 95, already lost about 0.6 % of the changed pixels on the synthetic CDD, up
to 1.2 % per image; nothing can recover them.) The dataset reports what it saw: ``label_encoding``
("0-255", "0-1", "mixed", "blank" when every label seen was all zero, "unknown" before any was read),
``encoding_counts`` and an INFO log line after probing ``probe`` labels at construction; mixed
encodings give a warning with the counts. A 0-255 label with many mid values (64..191, beyond JPEG edge
noise) warns above ``MID_WARN_FRACTION`` and is an error above ``MID_ERROR_FRACTION`` of its pixels (a
photo or a soft map picked as the label).

Preprocessing and augmentation: see ``rsrepro.data.cd_transforms`` ("dasnet": BGR minus per-time mean;
"lsnet": raw 0-255 floats; augmentation off by default, "lsnet" = flips + rot90).

``dataset[i]`` returns ``(t0 float32 3xHxW, t1 float32 3xHxW, label int64 HxW in {0, 1})``; ``files``
lists ``(t0_path, t1_path, label_path)`` in order; ``names`` the sample names.

Deviations from the official code (lehaifeng/DASNet ``dataset/rs.py``, silence-tang/DASNet-V2, LSNet
``utils/dataloaders.py``):
- a malformed list line is an error naming the line; the official ``except ValueError`` branch silently
  keeps the PREVIOUS line's image names and fails later on a label path made of the whole line.
  Windows line ends are accepted (the official ``strip("\\n")`` keeps the ``\\r`` in the label path).
- a file missing from a list / folder, A/B or image/label size mismatches, non-RGB images (the
  official ``Image.open`` without ``convert`` fails later in ``data_transform`` with a numpy error), empty
  splits, unreadable / truncated / empty files: ``DatasetError`` naming the file (and list line).
- 0/1 labels are detected: the 2025 official ``label > 1`` turns a DASNet-V2 0/1 label into all zeros
  silently; here a 0/1 file is binarised at >= 1 whatever ``threshold`` is.
- no resizing: the official DASNet loader resizes every image AND label to 256x256 bilinearly
  (``Scale((256, 256))``), a no-op for CDD's 256x256 files; LEVIR-CD is returned at full size.
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from .cd_transforms import PREPROCESSING, build_cd_augmentation, lsnet_augmentation, resolve_means
from .errors import DatasetError
from .io import read_image, read_mask
from .registry import DATASETS
from .seeding import EpochSeededSamples

__all__ = [
    "IMAGE_EXTENSIONS",
    "ZERO_ONE_MAX",
    "MID_WARN_FRACTION",
    "MID_ERROR_FRACTION",
    "CDSample",
    "LabelInfo",
    "read_cd_list_file",
    "find_cd_folder_samples",
    "inspect_label",
    "binarize_label",
    "otsu_binarize",
    "channel_means",
    "CDDDataset",
    "LEVIRCDDataset",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
# A label whose largest value is at most this is a 0/1 map: DASNet-V2 writes its 0/1 labels as JPEGs,
# whose compression noise reaches 2 (measured: a 0/1 mask through cv2.imwrite -> 0, 1 and one 2).
ZERO_ONE_MAX = 3
MID_RANGE = (64, 191)  # values of a 0-255 label that are neither ~0 nor ~255
MID_WARN_FRACTION = 0.05
MID_ERROR_FRACTION = 0.25
LABEL_VALUES = ("auto", "0-255", "0-1")
ENCODINGS = ("0-255", "0-1", "blank")


class CDSample(NamedTuple):
    """One pair: t0 image, t1 image, label, and where it was listed (``list.txt:3`` or the A folder)."""

    t0: str
    t1: str
    label: str
    where: str


class LabelInfo(NamedTuple):
    """What ``inspect_label`` found: encoding, largest value, pixels in ``MID_RANGE``, all pixels."""

    kind: str
    max_value: int
    mid_pixels: int
    pixels: int


# --------------------------------------------------------------------------------------------------
# File discovery
# --------------------------------------------------------------------------------------------------


def read_cd_list_file(list_file: str, root: str) -> List[CDSample]:
    """Read a DASNet list: ``<t0> <t1> <label>`` per line, paths relative to ``root``.

    Blank lines are skipped; fields may be separated by any whitespace (the official code needs exactly
    one space). Errors name the list file and the line number: a line that does not hold exactly three
    paths, a listed file that does not exist, a list without entries.
    """
    list_file = os.fspath(list_file)
    if not os.path.isfile(list_file):
        raise DatasetError(f"list file not found: {list_file}")
    samples: List[CDSample] = []
    with open(list_file, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 3:
                raise DatasetError(
                    f"{list_file}:{number}: expected three space-separated paths '<t0 image> <t1 image> "
                    f"<label>', found {len(fields)} field(s): {line!r}"
                )
            paths = [os.path.join(root, f) for f in fields]
            for path, what in zip(paths, ("t0 image", "t1 image", "label")):
                if not os.path.isfile(path):
                    raise DatasetError(f"{list_file}:{number}: {what} file not found: {path}")
            samples.append(CDSample(*paths, where=f"{list_file}:{number}"))
    if not samples:
        raise DatasetError(f"list file has no entries (empty split): {list_file}")
    return samples


def _image_names(folder: str) -> Tuple[List[str], List[str]]:
    """Sorted image file names in ``folder`` (hidden files skipped) and the other names found."""
    images, others = [], []
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and os.path.isfile(
            os.path.join(folder, name)
        ):
            images.append(name)
        else:
            others.append(name)
    return images, others


def _find_label(label_folder: str, name: str) -> str | None:
    """The label of image ``name``: the same name, else the same stem with .png (LSNet), else any image."""
    stem = os.path.splitext(name)[0]
    candidates = [name, stem + ".png"] + [stem + ext for ext in IMAGE_EXTENSIONS]
    for candidate in candidates:
        path = os.path.join(label_folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def find_cd_folder_samples(
    root: str, split: str, label_dir: str = "OUT", t0_dir: str = "A", t1_dir: str = "B"
) -> List[CDSample]:
    """Pair ``<root>/<split>/A/<name>`` with ``B/<name>`` and ``<label_dir>/<stem>.<ext>``, sorted by name.

    Raises DatasetError for a missing folder, an empty split, and A images without a t1 image or a label
    (all counted, the first few named). Non-image files in A are skipped with a warning.
    """
    root = os.fspath(root)
    split_dir = os.path.join(root, split)
    folders = {what: os.path.join(split_dir, sub) for what, sub in
               (("t0", t0_dir), ("t1", t1_dir), ("label", label_dir))}  # fmt: skip
    for what, folder in folders.items():
        if not os.path.isdir(folder):
            hint = ""
            if (
                what == "label"
                and label_dir == "OUT_binary"
                and os.path.isdir(os.path.join(split_dir, "OUT"))
            ):
                hint = f" (make it with: python tools/prepare_cdd_binary.py --root {root} --split {split})"
            raise DatasetError(f"{what} folder for split '{split}' not found: {folder}{hint}")
    names, others = _image_names(folders["t0"])
    if others:
        warnings.warn(
            f"skipped {len(others)} non-image entr{'y' if len(others) == 1 else 'ies'} in {folders['t0']} "
            f"(first: {others[0]})",
            UserWarning,
            stacklevel=2,
        )
    if not names:
        raise DatasetError(f"no images found for split '{split}' (empty split): {folders['t0']}")
    samples: List[CDSample] = []
    missing_t1: List[str] = []
    missing_label: List[str] = []
    for name in names:
        t1 = os.path.join(folders["t1"], name)
        label = _find_label(folders["label"], name)
        if not os.path.isfile(t1):
            missing_t1.append(t1)
        if label is None:
            missing_label.append(os.path.join(folders["label"], name))
        if os.path.isfile(t1) and label is not None:
            samples.append(CDSample(os.path.join(folders["t0"], name), t1, label, where=folders["t0"]))
    for missing, what in ((missing_t1, "t1 image"), (missing_label, "label")):
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) in {folders['t0']} have no {what}; first: {missing[0]}"
                + (f", {missing[1]}" if len(missing) > 1 else "")
            )
    return samples


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


def inspect_label(label: np.ndarray, path: str | None = None) -> LabelInfo:
    """Classify a raw uint8 label as "0-255", "0-1" or "blank" (see the module docstring).

    Raises DatasetError for a 0-255 label with more than ``MID_ERROR_FRACTION`` of its pixels in
    ``MID_RANGE``: that is not a binary mask.
    """
    label = np.asarray(label)
    if label.dtype != np.uint8 or label.ndim != 2:
        raise DatasetError(f"label must be an H x W uint8 map, got {label.dtype} {label.shape}: {path}")
    counts = np.bincount(label.ravel(), minlength=256)
    max_value = int(np.flatnonzero(counts)[-1]) if label.size else 0
    mid = int(counts[MID_RANGE[0] : MID_RANGE[1] + 1].sum())
    if max_value == 0:
        kind = "blank"
    elif max_value <= ZERO_ONE_MAX:
        kind = "0-1"
    else:
        kind = "0-255"
    info = LabelInfo(kind, max_value, mid, int(label.size))
    if kind == "0-255" and mid > MID_ERROR_FRACTION * label.size:
        raise DatasetError(
            f"label is not a binary mask: {mid} of {label.size} pixels ({100.0 * mid / label.size:.1f} %) "
            f"have values {MID_RANGE[0]}..{MID_RANGE[1]} (a change label holds values near 0 and 255, or "
            f"0 and 1); is this an image or a probability map? {path}"
        )
    return info


def binarize_label(label: np.ndarray, kind: str, threshold: int = 128) -> np.ndarray:
    """0/1 uint8 map: ``label >= threshold`` for a "0-255" label, ``label >= 1`` for "0-1" / "blank"."""
    if kind not in ENCODINGS:
        raise ValueError(f"kind must be one of {ENCODINGS}, got {kind!r}")
    cut = threshold if kind == "0-255" else 1
    return (np.asarray(label) >= cut).astype(np.uint8)


def otsu_binarize(gray: np.ndarray, method: str = "cv2") -> Tuple[float, np.ndarray]:
    """Otsu-threshold a uint8 label: ``(threshold, 0/255 uint8 map)``, changed = value > threshold.

    ``method="cv2"`` (default) is what the official LSNet tool runs (``cv2.threshold(gray, 0, 255,
    cv2.THRESH_OTSU)``); ``"skimage"`` uses ``skimage.filters.threshold_otsu``. Both maximise the
    between-class variance over the 256 grey levels with the same ``> threshold`` rule; they can differ
    (a) on a constant image: cv2 returns 0 (a constant non-zero label becomes all 255), skimage returns
    the value itself (all 0), and (b) in where, inside a run of empty histogram bins, the tie is broken
    (floating-point order), which moves the reported threshold but not the map.
    """
    gray = np.asarray(gray)
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"otsu_binarize needs an H x W uint8 map, got {gray.dtype} {gray.shape}")
    if method == "cv2":
        import cv2  # lazy: only the preparation tool and the generator need OpenCV

        threshold, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_OTSU)
        return float(threshold), binary.astype(np.uint8)
    if method == "skimage":
        from skimage.filters import threshold_otsu

        threshold = float(threshold_otsu(gray))
        return threshold, np.where(gray > threshold, 255, 0).astype(np.uint8)
    raise ValueError(f"method must be 'cv2' or 'skimage', got {method!r}")


def channel_means(dataset: CDDDataset, indices: Sequence[int] | None = None) -> Tuple[Tuple, Tuple]:
    """Per-time BGR channel means over a dataset's images (for ``means=`` on a dataset without
    official values, e.g. LEVIR-CD). Rounded to 2 decimals like the official constants."""
    indices = range(len(dataset)) if indices is None else indices
    sums = np.zeros((2, 3), np.float64)
    pixels = np.zeros(2, np.float64)
    for index in indices:
        sample = dataset.samples[index]
        for t, path in enumerate((sample.t0, sample.t1)):
            image = read_image(path, convert=dataset.convert_images)
            sums[t] += image.reshape(-1, 3)[:, ::-1].sum(axis=0, dtype=np.float64)  # BGR
            pixels[t] += image.shape[0] * image.shape[1]
    if not pixels.all():
        raise DatasetError("channel_means: no images given")
    means = np.round(sums / pixels[:, None], 2)
    return tuple(means[0].tolist()), tuple(means[1].tolist())


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------

Augment = Callable[[np.ndarray, np.ndarray, np.ndarray, random.Random], Tuple[np.ndarray, ...]]


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"


@DATASETS.register("cdd")
class CDDDataset(EpochSeededSamples):
    """CDD-style change detection pairs for DASNet, DASNet-V2 and LSNet, returning numpy arrays.

    Args:
        root (str): dataset root (holding ``train/``, ``val/``, ``test/`` and the list files).
        split (str): "train", "val" or "test": the folder read, and the default list ``<split>.txt``.
        list_file (str | None): list of ``<t0> <t1> <label>`` lines, paths relative to ``root``; a relative
            list path is looked up as given, then under ``root``. Default None: ``<root>/<split>.txt``
            in the list layout.
        layout (str): "list", "folder" or "auto" (default): "list" when ``list_file`` is given, or when
            ``<root>/<split>.txt`` exists and ``label_dir`` is None or "OUT" (the lists name OUT);
            otherwise "folder".
        label_dir (str | None): label folder of the folder layout: "OUT" (default), "OUT_binary"
            (LSNet), "label" (LEVIR-CD). The list layout takes the labels from the list, so a
            ``label_dir`` other than "OUT" with ``layout="list"`` is an error.
        preprocessing (str): "dasnet" (default: RGB -> BGR minus per-time mean) or "lsnet" (raw 0-255).
        means: "cdd" (default), "bcdd" or ``((b, g, r) T0, (b, g, r) T1)``; used by "dasnet" only.
        augment: None (default, as official DASNet), "lsnet" (flips + rot90, ``rsrepro.data.cd_transforms``), a
            config list/dict for ``build_cd_augmentation``, or a callable ``(t0, t1, label, rng)``.
        threshold (int): a 0-255 label is changed where value >= threshold. Default 128; 2 reproduces the
            2025 official DASNet (``label > 1``).
        label_values (str): "auto" (default: each file by its own encoding), "0-255" or "0-1": every
            non-blank label must have that encoding, else DatasetError.
        seed (int | None): with an int, sample ``i`` of epoch ``e`` draws its augmentation from
            ``random.Random(f"{seed}:{e}:{i}")`` (reproducible, different per worker/epoch; call
            ``set_epoch``). None (default): a fresh OS-seeded generator per sample.
        probe (int | None): labels read at construction to detect the encoding (spread evenly over the
            split). Default 16; None reads all; 0 none (``label_encoding`` is "unknown" until read).
        convert_images (bool): accept non-RGB images by converting them like ``Image.convert('RGB')``
            (with a warning per file) instead of raising. Default False.

    Attributes: ``samples`` (``CDSample`` list), ``files``, ``names``, ``layout``, ``label_encoding``,
    ``encoding_counts``, ``means`` (BGR T0/T1 for "dasnet", else None); class constants ``NUM_CLASSES``,
    ``CLASS_NAMES``, ``PALETTE`` and ``IGNORE_INDEX`` (255, never produced: the labels have no ignored
    pixels) for the training pipeline.
    """

    NUM_CLASSES = 2
    CLASS_NAMES = ("unchanged", "changed")
    PALETTE = ((0, 0, 0), (255, 255, 255))
    IGNORE_INDEX = 255

    def __init__(
        self,
        root: str,
        split: str = "train",
        list_file: str | None = None,
        layout: str = "auto",
        label_dir: str | None = None,
        preprocessing: str = "dasnet",
        means: str | Sequence[Sequence[float]] = "cdd",
        augment: str | Augment | Sequence[Any] | Dict[str, Any] | None = None,
        threshold: int = 128,
        label_values: str = "auto",
        seed: int | None = None,
        probe: int | None = 16,
        convert_images: bool = False,
    ) -> None:
        self.root = os.fspath(root)
        self.split = split
        if not os.path.isdir(self.root):
            raise DatasetError(f"dataset root folder not found: {self.root}")
        if layout not in ("auto", "list", "folder"):
            raise DatasetError(f"layout must be 'auto', 'list' or 'folder', got {layout!r}")
        if preprocessing not in PREPROCESSING:
            raise DatasetError(f"preprocessing must be one of {sorted(PREPROCESSING)}, got {preprocessing!r}")
        if label_values not in LABEL_VALUES:
            raise DatasetError(f"label_values must be one of {LABEL_VALUES}, got {label_values!r}")
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, np.integer))
            or not 1 <= threshold <= 255
        ):
            raise DatasetError(f"threshold must be an int in 1..255, got {threshold!r}")
        self.preprocessing = preprocessing
        self._preprocess = PREPROCESSING[preprocessing]
        self.means = resolve_means(means) if preprocessing == "dasnet" else None
        self.threshold = int(threshold)
        self.label_values = label_values
        self.seed = seed
        self.epoch = 0
        self.convert_images = convert_images

        list_path = None
        if list_file is not None:
            list_path = os.fspath(list_file)
            if not os.path.isabs(list_path) and not os.path.isfile(list_path):
                list_path = os.path.join(self.root, list_path)
        default_list = os.path.join(self.root, f"{split}.txt")
        if layout == "auto":
            use_list = list_path is not None or (os.path.isfile(default_list) and label_dir in (None, "OUT"))
            layout = "list" if use_list else "folder"
        self.layout = layout
        if layout == "list":
            if label_dir not in (None, "OUT"):
                raise DatasetError(
                    f"label_dir={label_dir!r} applies to the folder layout; a list file names its labels "
                    f"(pass layout='folder', or a list whose third column points into {label_dir}/)"
                )
            self.list_file: str | None = list_path or default_list
            self.label_dir = None
            self.samples = read_cd_list_file(self.list_file, self.root)
        else:
            if list_path is not None:
                raise DatasetError("list_file was given with layout='folder'; pass one or the other")
            self.list_file = None
            self.label_dir = label_dir or "OUT"
            self.samples = find_cd_folder_samples(self.root, split, self.label_dir)
        self.files: List[Tuple[str, str, str]] = [(s.t0, s.t1, s.label) for s in self.samples]
        self.names: List[str] = [os.path.basename(s.t0) for s in self.samples]

        if augment is None or callable(augment):
            self.augment = augment
        elif augment == "lsnet":
            self.augment = lsnet_augmentation()
        elif isinstance(augment, str):
            raise DatasetError(f"augment must be None, 'lsnet', a config or a callable, got {augment!r}")
        else:
            self.augment = build_cd_augmentation(augment)

        self._seen: Dict[str, str] = {}  # label path -> encoding, for the report
        self._warned_mixed = False
        self._probing = False
        self._probe(probe)

    # -- construction helpers ------------------------------------------------------------------------

    @classmethod
    def dasnet(cls, root: str, split: str = "train", **kwargs: Any) -> CDDDataset:
        """Official DASNet / DASNet-V2 setting: list layout, BGR minus CDD means, no augmentation."""
        kwargs.setdefault("preprocessing", "dasnet")
        return cls(root, split, **kwargs)

    @classmethod
    def lsnet(cls, root: str, split: str = "train", train: bool | None = None, **kwargs: Any) -> CDDDataset:
        """Official LSNet setting: folder layout with OUT_binary PNGs, raw 0-255 inputs, flips + rot90 when
        ``train`` (default: split == "train")."""
        train = split == "train" if train is None else train
        kwargs.setdefault("layout", "folder")
        kwargs.setdefault("label_dir", "OUT_binary")
        kwargs.setdefault("preprocessing", "lsnet")
        kwargs.setdefault("augment", "lsnet" if train else None)
        return cls(root, split, **kwargs)

    def _probe(self, probe: int | None) -> None:
        count = len(self) if probe is None else max(0, min(int(probe), len(self)))
        if count == 0:
            return
        indices = sorted(set(np.linspace(0, len(self) - 1, count).round().astype(int).tolist()))
        self._probing = True
        try:
            for index in indices:
                self.read_sample(index, images=False)
        finally:
            self._probing = False
        counts = ", ".join(f"{kind} {n}" for kind, n in self.encoding_counts.items() if n)
        logger.info(
            "%s: label encoding %s (%d of %d label files probed: %s)",
            self._short_name(),
            self.label_encoding,
            len(indices),
            len(self),
            counts,
        )
        if self.label_encoding == "mixed":
            self._warn_mixed(f"among {len(indices)} probed label files", self._first_minority())

    def _short_name(self) -> str:
        return f"CDD {self.split} ({self.layout} layout, {len(self)} samples)"

    # -- label bookkeeping ---------------------------------------------------------------------------

    @property
    def encoding_counts(self) -> Dict[str, int]:
        """Number of label files seen so far per encoding ("0-255", "0-1", "blank")."""
        counts = dict.fromkeys(ENCODINGS, 0)
        for kind in self._seen.values():
            counts[kind] += 1
        return counts

    @property
    def label_encoding(self) -> str:
        """ "0-255", "0-1", "mixed", "blank" (only all-zero labels seen) or "unknown" (none read yet)."""
        counts = self.encoding_counts
        kinds = [k for k in ("0-255", "0-1") if counts[k]]
        if len(kinds) == 2:
            return "mixed"
        if kinds:
            return kinds[0]
        return "blank" if counts["blank"] else "unknown"

    def _record(self, path: str, info: LabelInfo, where: str) -> None:
        if self.label_values != "auto" and info.kind not in (self.label_values, "blank"):
            raise DatasetError(
                f"label holds values up to {info.max_value}, i.e. {info.kind}, but label_values="
                f"'{self.label_values}' was requested ({where}): {path}"
            )
        if (
            info.kind == "0-255"
            and info.mid_pixels > MID_WARN_FRACTION * info.pixels
            and path not in self._seen
        ):
            warnings.warn(
                f"label has {info.mid_pixels} of {info.pixels} pixels with values "
                f"{MID_RANGE[0]}..{MID_RANGE[1]} (more than JPEG noise); binarised at >= {self.threshold}: "
                f"{path}",
                UserWarning,
                stacklevel=3,
            )
        first_time = path not in self._seen
        self._seen[path] = info.kind
        if first_time and not self._probing and self.label_encoding == "mixed":
            if info.kind == self._first_minority_kind():
                self._warn_mixed("so far", path)

    def _first_minority_kind(self) -> str:
        counts = self.encoding_counts
        return "0-1" if counts["0-255"] >= counts["0-1"] else "0-255"

    def _first_minority(self) -> str:
        kind = self._first_minority_kind()
        return next(p for p, k in self._seen.items() if k == kind)

    def _warn_mixed(self, scope: str, example: str) -> None:
        """Warn once (later occurrences go to the log) that 0/255 and 0/1 labels are mixed, with counts."""
        counts = self.encoding_counts
        message = (
            f"label encodings are mixed: {counts['0-255']} file(s) 0/255 and {counts['0-1']} file(s) 0/1 "
            f"{scope} (e.g. {self._first_minority_kind()}: {example}); each file is binarised by its own "
            f"encoding (0/255 at >= {self.threshold}, 0/1 at >= 1)"
        )
        if self._warned_mixed:
            logger.warning(message)
        else:
            warnings.warn(message, UserWarning, stacklevel=4)
            self._warned_mixed = True

    # -- reading -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.samples)

    def read_raw_label(self, index: int) -> np.ndarray:
        """The label file of sample ``index`` as stored (uint8 HxW, 0..255)."""
        sample = self.samples[index]
        try:
            return read_mask(sample.label)
        except DatasetError as exc:
            raise DatasetError(f"{exc} (listed at {sample.where})") from exc

    def read_sample(
        self, index: int, images: bool = True
    ) -> Tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Sample ``index`` unprocessed: t0, t1 (uint8 HxWx3 RGB, None if not ``images``), 0/1 uint8 label."""
        sample = self.samples[index]
        raw = self.read_raw_label(index)
        try:
            info = inspect_label(raw, sample.label)
        except DatasetError as exc:
            raise DatasetError(f"{exc} (listed at {sample.where})") from exc
        self._record(sample.label, info, sample.where)
        label = binarize_label(raw, info.kind, self.threshold)
        if not images:
            return None, None, label
        try:
            t0 = read_image(sample.t0, convert=self.convert_images)
            t1 = read_image(sample.t1, convert=self.convert_images)
        except DatasetError as exc:
            raise DatasetError(f"{exc} (listed at {sample.where})") from exc
        if t0.shape != t1.shape:
            raise DatasetError(
                f"t0 and t1 images differ in size: {_size(t0)} (WxH) {sample.t0} vs {_size(t1)} {sample.t1} "
                f"(listed at {sample.where})"
            )
        if label.shape != t0.shape[:2]:
            raise DatasetError(
                f"label size {_size(label)} (WxH) differs from image size {_size(t0)}: label {sample.label}, "
                f"image {sample.t0} (listed at {sample.where})"
            )
        return t0, t1, label

    def load(self, index: int, rng: random.Random | None = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``index`` augmented with draws from ``rng`` (default ``rng_for(index)``), preprocessed."""
        t0, t1, label = self.read_sample(index)
        if self.augment is not None:
            t0, t1, label = self.augment(t0, t1, label, rng if rng is not None else self.rng_for(index))
        mean0, mean1 = self.means if self.means is not None else (None, None)
        return self._preprocess(t0, mean0), self._preprocess(t1, mean1), label.astype(np.int64)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return self.load(index % len(self))

    def validate(self) -> Dict[str, Any]:
        """Read every sample once (images, labels, sizes, encodings); raise on the first bad file.

        Returns ``{"samples", "label_encoding", "encoding_counts", "changed_fraction"}``.
        """
        changed = 0
        pixels = 0
        for index in range(len(self)):
            _, _, label = self.read_sample(index)
            changed += int(label.sum())
            pixels += label.size
        return {
            "samples": len(self),
            "label_encoding": self.label_encoding,
            "encoding_counts": self.encoding_counts,
            "changed_fraction": changed / max(1, pixels),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={self.root!r}, split={self.split!r}, layout={self.layout!r}, "
            f"preprocessing={self.preprocessing!r}, samples={len(self)}, labels={self.label_encoding!r})"
        )


@DATASETS.register("levir")
class LEVIRCDDataset(CDDDataset):
    """LEVIR-CD: ``<root>/<split>/{A,B,label}/*.png`` (1024x1024, labels 0/255), folder layout.

    Same arguments as ``CDDDataset`` with ``layout="folder"`` and ``label_dir="label"``. There are no
    official DASNet means for LEVIR-CD: pass ``means=channel_means(...)`` or ``preprocessing="lsnet"``;
    the default reuses the CDD means.
    """

    def __init__(self, root: str, split: str = "train", **kwargs: Any) -> None:
        kwargs.setdefault("layout", "folder")
        kwargs.setdefault("label_dir", "label")
        super().__init__(root, split, **kwargs)

    def _short_name(self) -> str:
        return f"LEVIR-CD {self.split} ({len(self)} samples)"
