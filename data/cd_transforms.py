"""Framework-free preprocessing and augmentation for change detection (DASNet, DASNet-V2, LSNet).

An augmentation is a callable ``t(t0, t1, label, rng) -> (t0, t1, label)`` on ``H x W x 3`` uint8 RGB
images and an ``H x W`` uint8 0/1 label, drawing every random decision from the ``random.Random`` passed
in; the SAME geometric transform is applied to both times and the label. Preprocessing then turns each
image into a float32 ``3 x H x W`` array.

Preprocessing (``PREPROCESSING``):

- ``"dasnet"`` (official DASNet / DASNet-V2 ``dataset/rs.py::data_transform``): RGB -> BGR, subtract the
  per-time mean (``MEANS_BGR``; T0 mean from the first image, T1 mean from the second), no division,
  HWC -> CHW. Computed in float64 and cast to float32 once at the end, as the official code does
  (``astype(np.float64)``, ``-=``, ``torch.from_numpy(...).float()``), so the values are bit-identical.
- ``"lsnet"`` (official LSNet / SNUNet-CD ``ToTensor``): raw 0-255 RGB as float32, HWC -> CHW.

Augmentation ``"lsnet"`` (SNUNet-CD ``utils/transforms.py::train_transforms``, which LSNet's loader
imports; the LSNet repository ships only a compiled copy of that file), and its draws, in order:

1. ``RandomPairHFlip(0.5)``: ``rng.random() < 0.5`` -> mirror left-right;
2. ``RandomPairVFlip(0.5)``: ``rng.random() < 0.5`` -> mirror top-bottom;
3. ``RandomPairRot90(0.75)``: ``rng.random() < 0.75`` -> then ``rng.choice((90, 180, 270))`` and rotate
   counter-clockwise by that angle (Pillow ``ROTATE_90/180/270``, ``np.rot90``).

Each step always makes its first draw; the rotation angle is drawn only when the rotation fires. With
the same generator state these are the draws the official code makes from the global ``random``.
Official DASNet has no augmentation (``augment=None``, the default of ``rsrepro.data.cdd.CDDDataset``).

``build_cd_augmentation(config)`` builds a pipeline from ``[{"type": Name, **options}, ...]`` or
``{Name: options}`` (names: ``CD_TRANSFORMS.names()``), like ``rsrepro.data.transforms.build_transforms``.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from rsrepro.registry import Registry

from .errors import DatasetError, TransformConfigError
from .transforms import RandomFlip, _check_prob, _config_steps, rot90_arrays

__all__ = [
    "MEANS_BGR",
    "PREPROCESSING",
    "CD_TRANSFORMS",
    "resolve_means",
    "dasnet_preprocess",
    "lsnet_preprocess",
    "PairCompose",
    "RandomPairHFlip",
    "RandomPairVFlip",
    "RandomPairRot90",
    "lsnet_augmentation",
    "build_cd_augmentation",
]

Mean = Tuple[float, float, float]

# Per-time means in BGR order (subtracted after RGB -> BGR), from the official cfg/CDD.py and cfg/BCDD.py
# of lehaifeng/DASNet (dasnet.md). The 2025 re-upload's DASNET/cfg/BCDD.py repeats the CDD values; the
# 2020 cfg/BCDD.py has the BCDD ones used here.
MEANS_BGR: Dict[str, Tuple[Mean, Mean]] = {
    "cdd": ((87.72, 100.2, 90.43), (120.24, 127.93, 121.18)),
    "bcdd": ((98.62, 113.27, 123.59), (117.38, 123.09, 123.20)),
}


def resolve_means(means: str | Sequence[Sequence[float]]) -> Tuple[Mean, Mean]:
    """``"cdd"`` / ``"bcdd"`` or a custom ``((b, g, r) for T0, (b, g, r) for T1)`` -> two BGR triples."""
    if isinstance(means, str):
        key = means.lower()
        if key not in MEANS_BGR:
            raise DatasetError(f"unknown means {means!r}; use one of {sorted(MEANS_BGR)} or two BGR triples")
        return MEANS_BGR[key]
    try:
        t0, t1 = (tuple(float(v) for v in m) for m in means)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"means must be a name or two (b, g, r) triples, got {means!r}") from exc
    if len(t0) != 3 or len(t1) != 3 or not all(np.isfinite(t0 + t1)):
        raise DatasetError(f"means must be two finite (b, g, r) triples (T0, T1), got {means!r}")
    return t0, t1  # type: ignore[return-value]


def _check_rgb(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} {image.shape}")


def dasnet_preprocess(image: np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """Official DASNet: RGB -> BGR, minus the BGR mean (float64), HWC -> CHW, float32."""
    _check_rgb(image)
    x = image[:, :, ::-1].astype(np.float64)  # h, w, 3 (BGR)
    x -= np.asarray(mean_bgr, dtype=np.float64)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)  # 3, h, w


def lsnet_preprocess(image: np.ndarray, mean_bgr: Sequence[float] | None = None) -> np.ndarray:
    """Official LSNet: raw 0-255 RGB values as float32, HWC -> CHW (``mean_bgr`` is ignored)."""
    _check_rgb(image)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)  # 3, h, w


PREPROCESSING: Dict[str, Callable[..., np.ndarray]] = {
    "dasnet": dasnet_preprocess,
    "lsnet": lsnet_preprocess,
}

CD_TRANSFORMS = Registry("change-detection transform")

Triple = Tuple[np.ndarray, np.ndarray, np.ndarray]


class PairCompose:
    """Apply pair transforms in order, all drawing from the ``rng`` passed in."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        flat: List[Any] = []
        for t in transforms:
            flat.extend(t.transforms if isinstance(t, PairCompose) else [t])
        self.transforms = flat

    def __call__(self, t0: np.ndarray, t1: np.ndarray, label: np.ndarray, rng: random.Random) -> Triple:
        for t in self.transforms:
            t0, t1, label = t(t0, t1, label, rng)
        return t0, t1, label

    def __repr__(self) -> str:
        return "PairCompose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class _PairFlip(RandomFlip):
    """The package's one flip (``transforms.RandomFlip``) applied to t0, t1 and the label together."""

    def __call__(self, t0: np.ndarray, t1: np.ndarray, label: np.ndarray, rng: random.Random) -> Triple:
        t0, t1, label = self.flip((t0, t1, label), rng)
        return t0, t1, label


@CD_TRANSFORMS.register("RandomPairHFlip")
class RandomPairHFlip(_PairFlip):
    """Mirror t0, t1 and the label left-right when ``rng.random() < prob`` (one draw, always made)."""

    axis = 1
    name = "RandomPairHFlip"


@CD_TRANSFORMS.register("RandomPairVFlip")
class RandomPairVFlip(_PairFlip):
    """Mirror t0, t1 and the label top-bottom when ``rng.random() < prob`` (one draw, always made)."""

    axis = 0
    name = "RandomPairVFlip"


@CD_TRANSFORMS.register("RandomPairRot90")
class RandomPairRot90:
    """With ``rng.random() < prob``, rotate counter-clockwise by ``rng.choice(angles)`` degrees.

    Args:
        prob (float): rotation probability. Default 0.75 (SNUNet-CD / LSNet).
        angles (sequence of int): multiples of 90 to choose from, in this order (the order matters for
            ``rng.choice``). Default (90, 180, 270) = Pillow ROTATE_90, ROTATE_180, ROTATE_270.
    A 90/270 rotation swaps height and width of a non-square sample.
    """

    def __init__(self, prob: float = 0.75, angles: Sequence[int] = (90, 180, 270)) -> None:
        self.prob = _check_prob(prob, "RandomPairRot90.prob")
        angles = tuple(int(a) for a in angles)
        if not angles or any(a % 90 for a in angles):
            raise TransformConfigError(f"RandomPairRot90.angles must be multiples of 90, got {angles!r}")
        self.angles = angles

    def __call__(self, t0: np.ndarray, t1: np.ndarray, label: np.ndarray, rng: random.Random) -> Triple:
        if rng.random() < self.prob:
            k = (rng.choice(self.angles) // 90) % 4
            t0, t1, label = rot90_arrays((t0, t1, label), k)
        return t0, t1, label

    def __repr__(self) -> str:
        return f"RandomPairRot90(prob={self.prob}, angles={self.angles})"


@CD_TRANSFORMS.register("LSNetTrain")
def lsnet_augmentation(flip_prob: float = 0.5, rotate_prob: float = 0.75) -> PairCompose:
    """The official LSNet / SNUNet-CD training augmentation: h-flip, v-flip, rot90 (module docstring)."""
    return PairCompose([RandomPairHFlip(flip_prob), RandomPairVFlip(flip_prob), RandomPairRot90(rotate_prob)])


def build_cd_augmentation(config: Sequence[Any] | Mapping[str, Any]) -> PairCompose:
    """Build a ``PairCompose`` from a config, e.g. ``[{"type": "RandomPairHFlip", "prob": 0.5}]``.

    Unknown names, unknown options and bad values raise ``TransformConfigError`` naming the step.
    """
    steps = []
    for position, (name, options) in enumerate(_config_steps(config)):
        try:
            steps.append(CD_TRANSFORMS.build(name, **options))
        except TransformConfigError as exc:
            raise TransformConfigError(f"transform #{position} ({name}): {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise TransformConfigError(f"transform #{position} ({name}): {message}") from exc
    return PairCompose(steps)
