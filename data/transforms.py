"""Framework-free (numpy / Pillow) image + label transforms: DANet on Cityscapes and FactSeg on iSAID.

Every transform is a callable ``t(image, label, rng) -> (image, label)``:
``image`` is an ``H x W x 3`` uint8 RGB array, ``label`` an ``H x W`` uint8 trainId map (255 = ignore)
or None (unlabelled inference), ``rng`` a ``random.Random`` that every random decision is drawn from.
``Normalize`` is the last step; it returns a float32 ``3 x H x W`` image and an int64 label.

DANet training (official README and ``encoding/datasets/base.py::_sync_transform`` of the 2019 tree,
junfu1115/DANet commit 97f0c42), as built by ``danet_train_transforms``, and its draws, in order:

1. ``RandomHorizontalFlip(0.5)``: ``rng.random() < 0.5`` -> mirror image and label.
2. ``RandomScale(base_size, (0.75, 2.0))``: ``short = rng.randint(int(base_size * 0.75),
   int(base_size * 2.0))`` (both ends included, uniform over integers). The SHORT side becomes
   ``short``; the other side is ``int(long * short / short_side)`` (truncated, computed in float64),
   i.e. for ``h > w``: ``ow = short, oh = int(h * short / w)``, else ``oh = short, ow = int(w * short
   / h)``. Pillow resize: image BILINEAR, label NEAREST.
3. ``PadToCrop(crop)``: no draw. If the image is smaller than the crop, pad at the bottom/right
   (image 0, label 255). (The official code tests ``short < crop``; for a square crop that is the same.)
4. ``RandomCrop(crop)``: ``x = rng.randint(0, w - crop_w)`` then ``y = rng.randint(0, h - crop_h)``.
5. optional ``RandomGaussianBlur`` (Paddle 1.x DANet port, off by default): ``rng.random() < 0.3``
   -> then ``radius = rng.random() * max_radius`` (max_radius 1.0) and Pillow ``GaussianBlur(radius)``.
6. optional ``RandomColorJitter`` (Paddle 1.x port, off by default): ``rng.random() < 0.3`` -> then
   four factors ``rng.uniform(0.75, 1.25)`` for Pillow ``ImageEnhance`` Brightness, Color, Contrast,
   Sharpness, drawn and applied in that order.
7. ``Normalize``: ``x = uint8 / 255`` then ``(x - mean) / std`` in float32 (ImageNet mean/std), HWC -> CHW.

A draw is made only by an enabled step, and steps 5/6 draw their parameters only when they fire.
(The Paddle port wrote ``random.random() > 0.7`` and used ``np.random.uniform`` for the factors; the
probability is the same, the draws are ours.)

Validation (``val_transforms``): normalise only; optionally ``ResizeShort(base_size)`` (same size rule
as step 2 without the draw) and ``CenterCrop(crop)`` (offset ``int(round((w - crop) / 2))``, Python
rounding), which together give the official ``_val_sync_transform`` (base_size = crop_size).

``build_transforms(config)`` builds a pipeline from a list of ``{"type": Name, **options}`` or a mapping
``{Name: options}`` (YAML order kept); unknown names or options raise ``TransformConfigError``.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from rsrepro.isaid import IGNORE_INDEX as ISAID_IGNORE_INDEX
from rsrepro.isaid import MEAN as ISAID_MEAN
from rsrepro.isaid import STD as ISAID_STD
from rsrepro.registry import Registry

from .errors import TransformConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TRANSFORMS",
    "Compose",
    "flip_arrays",
    "rot90_arrays",
    "RandomFlip",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "RandomRotate90K",
    "RandomScale",
    "ResizeShort",
    "PadToCrop",
    "RandomCrop",
    "CenterCrop",
    "RandomGaussianBlur",
    "RandomColorJitter",
    "Normalize",
    "NormalizePixels",
    "danet_train_transforms",
    "val_transforms",
    "factseg_train_transforms",
    "factseg_val_transforms",
    "build_transforms",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Label = np.ndarray | None
Size = int | Sequence[int]

TRANSFORMS = Registry("transform")


def _hw(size: Size, what: str) -> Tuple[int, int]:
    """An int or (h, w) pair of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        pair = (int(size[0]), int(size[1]))
    else:
        raise TransformConfigError(f"{what} must be an int or an (h, w) pair, got {size!r}")
    if min(pair) <= 0:
        raise TransformConfigError(f"{what} must be positive, got {size!r}")
    return pair


def _check_prob(prob: float, what: str) -> float:
    if not 0.0 <= float(prob) <= 1.0:
        raise TransformConfigError(f"{what} must be in [0, 1], got {prob!r}")
    return float(prob)


def _short_side_size(h: int, w: int, short: int) -> Tuple[int, int]:
    """(out_h, out_w) with the short side = ``short``, the other truncated (official rule)."""
    if h > w:
        return int(h * short / w), short
    return short, int(w * short / h)


def _resize_pair(image: np.ndarray, label: Label, out_h: int, out_w: int) -> Tuple[np.ndarray, Label]:
    image = np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BILINEAR))
    if label is not None:
        label = np.asarray(Image.fromarray(label).resize((out_w, out_h), Image.Resampling.NEAREST))
    return image, label


class Compose:
    """Apply transforms in order; draws come from the ``rng`` passed in, else from ``self.rng``.

    Args:
        transforms: transforms (a nested ``Compose`` is flattened). ``Normalize`` must be last.
        seed: seed of the generator held for calls without ``rng``. Default None (OS-seeded).
            Loader workers each get a copy of it in the same state, so a dataset should pass a
            per-sample ``rng`` (``CityscapesDataset`` does) rather than rely on this one.
    """

    def __init__(self, transforms: Sequence[Any], seed: int | None = None) -> None:
        flat: List[Any] = []
        for t in transforms:
            flat.extend(t.transforms if isinstance(t, Compose) else [t])
        for position, t in enumerate(flat[:-1]):
            if isinstance(t, Normalize):
                raise TransformConfigError(
                    f"Normalize must be the last transform, found at position {position} of {len(flat)}"
                )
        self.transforms = flat
        self.rng = random.Random(seed)

    def __call__(
        self, image: np.ndarray, label: Label = None, rng: random.Random | None = None
    ) -> Tuple[np.ndarray, Label]:
        rng = rng if rng is not None else self.rng
        for t in self.transforms:
            image, label = t(image, label, rng)
        return image, label

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def flip_arrays(arrays: Sequence[np.ndarray | None], axis: int) -> Tuple[np.ndarray | None, ...]:
    """Every array mirrored along ``axis`` (1: left-right, 0: top-bottom); None stays None."""
    return tuple(None if a is None else np.ascontiguousarray(np.flip(a, axis)) for a in arrays)


def rot90_arrays(arrays: Sequence[np.ndarray | None], k: int) -> Tuple[np.ndarray | None, ...]:
    """Every array rotated counter-clockwise by 90 x k degrees (Pillow's ``rotate(90 * k, expand=True)``)."""
    return tuple(None if a is None else np.ascontiguousarray(np.rot90(a, k)) for a in arrays)


class RandomFlip:
    """Mirror along ``axis`` when ``rng.random() < prob`` (one draw, always made), the image and its
    label together. The one flip of the package: the change-detection pair flips
    (``cd_transforms.RandomPairHFlip`` / ``RandomPairVFlip``) are this class with a (t0, t1, label) call."""

    axis = 1
    name = "RandomFlip"

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = _check_prob(prob, f"{self.name}.prob")

    def flip(self, arrays: Sequence[np.ndarray | None], rng: random.Random) -> Tuple[np.ndarray | None, ...]:
        return flip_arrays(arrays, self.axis) if rng.random() < self.prob else tuple(arrays)

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        image, label = self.flip((image, label), rng)
        return image, label

    def __repr__(self) -> str:
        return f"{self.name}(prob={self.prob})"


@TRANSFORMS.register("RandomHorizontalFlip")
class RandomHorizontalFlip(RandomFlip):
    """Mirror left-right when ``rng.random() < prob`` (one draw, always made)."""

    axis = 1
    name = "RandomHorizontalFlip"


@TRANSFORMS.register("RandomVerticalFlip")
class RandomVerticalFlip(RandomFlip):
    """Mirror top-bottom when ``rng.random() < prob`` (one draw, always made; FactSeg)."""

    axis = 0
    name = "RandomVerticalFlip"


@TRANSFORMS.register("RandomRotate90K")
class RandomRotate90K:
    """Rotate counter-clockwise by 90 x k degrees, k = ``rng.choice(ks)`` (one draw, always made; FactSeg).

    Counter-clockwise like Pillow's ``rotate(90 * k, expand=True)`` of the official transform.
    """

    def __init__(self, ks: Sequence[int] = (0, 1, 2, 3)) -> None:
        ks = tuple(int(k) for k in ks)
        if not ks or any(k not in (0, 1, 2, 3) for k in ks):
            raise TransformConfigError(f"RandomRotate90K.ks must be a non-empty list of 0..3, got {ks!r}")
        self.ks = ks

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        k = rng.choice(self.ks)
        if k:
            image, label = rot90_arrays((image, label), k)
        return image, label

    def __repr__(self) -> str:
        return f"RandomRotate90K(ks={list(self.ks)})"


@TRANSFORMS.register("RandomScale")
class RandomScale:
    """Resize so the short side is ``randint(int(base_size*lo), int(base_size*hi))`` (one draw).

    Args:
        base_size (int): reference short side. Default 1024 (DANet Cityscapes).
        scale_range (tuple | None): (lo, hi) factors. Default (0.75, 2.0). None: short side =
            ``base_size`` and no draw (the official ``--no-scale`` single-scale training).
    """

    def __init__(self, base_size: int = 1024, scale_range: Sequence[float] | None = (0.75, 2.0)) -> None:
        if int(base_size) <= 0:
            raise TransformConfigError(f"RandomScale.base_size must be positive, got {base_size!r}")
        self.base_size = int(base_size)
        if scale_range is None:
            self.bounds = None
        else:
            if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
                raise TransformConfigError(
                    f"RandomScale.scale_range must be (lo, hi) with 0 < lo <= hi, got {scale_range!r}"
                )
            lo, hi = int(self.base_size * scale_range[0]), int(self.base_size * scale_range[1])
            if lo <= 0:
                raise TransformConfigError(f"RandomScale: base_size*lo = {lo} pixels, must be positive")
            self.bounds = (lo, hi)
        self.scale_range = None if scale_range is None else tuple(float(s) for s in scale_range)

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        short = self.base_size if self.bounds is None else rng.randint(*self.bounds)
        out_h, out_w = _short_side_size(image.shape[0], image.shape[1], short)
        return _resize_pair(image, label, out_h, out_w)

    def __repr__(self) -> str:
        return f"RandomScale(base_size={self.base_size}, scale_range={self.scale_range})"


@TRANSFORMS.register("ResizeShort")
class ResizeShort:
    """Deterministic resize: short side -> ``short_size``, other side truncated (no draw)."""

    def __init__(self, short_size: int) -> None:
        if int(short_size) <= 0:
            raise TransformConfigError(f"ResizeShort.short_size must be positive, got {short_size!r}")
        self.short_size = int(short_size)

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        out_h, out_w = _short_side_size(image.shape[0], image.shape[1], self.short_size)
        return _resize_pair(image, label, out_h, out_w)

    def __repr__(self) -> str:
        return f"ResizeShort(short_size={self.short_size})"


@TRANSFORMS.register("PadToCrop")
class PadToCrop:
    """Pad bottom/right up to the crop: image with ``image_fill``, label with ``label_fill`` (no draw)."""

    def __init__(self, crop_size: Size = 768, image_fill: int = 0, label_fill: int = 255) -> None:
        self.crop_h, self.crop_w = _hw(crop_size, "PadToCrop.crop_size")
        self.image_fill = int(image_fill)
        self.label_fill = int(label_fill)

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        h, w = image.shape[:2]
        out_h, out_w = max(h, self.crop_h), max(w, self.crop_w)
        if (out_h, out_w) == (h, w):
            return image, label
        padded = np.full((out_h, out_w, image.shape[2]), self.image_fill, dtype=image.dtype)
        padded[:h, :w] = image
        if label is not None:
            padded_label = np.full((out_h, out_w), self.label_fill, dtype=label.dtype)
            padded_label[:h, :w] = label
            label = padded_label
        return padded, label

    def __repr__(self) -> str:
        fills = f"image_fill={self.image_fill}, label_fill={self.label_fill}"
        return f"PadToCrop(crop_size=({self.crop_h}, {self.crop_w}), {fills})"


@TRANSFORMS.register("RandomCrop")
class RandomCrop:
    """Crop at ``x = randint(0, w - crop_w)``, then ``y = randint(0, h - crop_h)`` (two draws)."""

    def __init__(self, crop_size: Size = 768) -> None:
        self.crop_h, self.crop_w = _hw(crop_size, "RandomCrop.crop_size")

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        h, w = image.shape[:2]
        if h < self.crop_h or w < self.crop_w:
            raise ValueError(
                f"RandomCrop({self.crop_h}x{self.crop_w}) got a {h}x{w} image; put PadToCrop before it"
            )
        x = rng.randint(0, w - self.crop_w)
        y = rng.randint(0, h - self.crop_h)
        image = image[y : y + self.crop_h, x : x + self.crop_w]
        label = None if label is None else label[y : y + self.crop_h, x : x + self.crop_w]
        return image, label

    def __repr__(self) -> str:
        return f"RandomCrop(crop_size=({self.crop_h}, {self.crop_w}))"


@TRANSFORMS.register("CenterCrop")
class CenterCrop:
    """Crop the centre: offset ``int(round((w - crop_w) / 2))`` (Python rounding, as official). No draw."""

    def __init__(self, crop_size: Size) -> None:
        self.crop_h, self.crop_w = _hw(crop_size, "CenterCrop.crop_size")

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        h, w = image.shape[:2]
        if h < self.crop_h or w < self.crop_w:
            raise ValueError(f"CenterCrop({self.crop_h}x{self.crop_w}) got a smaller {h}x{w} image")
        x = int(round((w - self.crop_w) / 2.0))
        y = int(round((h - self.crop_h) / 2.0))
        image = image[y : y + self.crop_h, x : x + self.crop_w]
        label = None if label is None else label[y : y + self.crop_h, x : x + self.crop_w]
        return image, label

    def __repr__(self) -> str:
        return f"CenterCrop(crop_size=({self.crop_h}, {self.crop_w}))"


@TRANSFORMS.register("RandomGaussianBlur")
class RandomGaussianBlur:
    """Paddle 1.x DANet port: with probability ``prob`` blur the image (Pillow GaussianBlur).

    Draws: ``rng.random() < prob``; if it fires, ``radius = rng.random() * max_radius``.
    Args: prob (float, default 0.3), max_radius (float, default 1.0: the port's ``random.random()``).
    """

    def __init__(self, prob: float = 0.3, max_radius: float = 1.0) -> None:
        self.prob = _check_prob(prob, "RandomGaussianBlur.prob")
        if float(max_radius) < 0:
            raise TransformConfigError(f"RandomGaussianBlur.max_radius must be >= 0, got {max_radius!r}")
        self.max_radius = float(max_radius)

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        if rng.random() < self.prob:
            radius = rng.random() * self.max_radius
            image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=radius)))
        return image, label

    def __repr__(self) -> str:
        return f"RandomGaussianBlur(prob={self.prob}, max_radius={self.max_radius})"


@TRANSFORMS.register("RandomColorJitter")
class RandomColorJitter:
    """Paddle 1.x DANet port: with probability ``prob`` enhance brightness, colour, contrast, sharpness.

    Draws: ``rng.random() < prob``; if it fires, four factors ``rng.uniform(lo, hi)`` for Pillow's
    ``ImageEnhance.Brightness``, ``Color``, ``Contrast``, ``Sharpness``, applied in that order.
    Args: prob (float, default 0.3), factor_range ((lo, hi), default (0.75, 1.25)).
    """

    def __init__(self, prob: float = 0.3, factor_range: Sequence[float] = (0.75, 1.25)) -> None:
        self.prob = _check_prob(prob, "RandomColorJitter.prob")
        if len(factor_range) != 2 or not 0 <= factor_range[0] <= factor_range[1]:
            raise TransformConfigError(
                f"RandomColorJitter.factor_range must be (lo, hi) with 0 <= lo <= hi, got {factor_range!r}"
            )
        self.factor_range = (float(factor_range[0]), float(factor_range[1]))

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random) -> Tuple[np.ndarray, Label]:
        if rng.random() < self.prob:
            picture = Image.fromarray(image)
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Color, ImageEnhance.Contrast,
                             ImageEnhance.Sharpness):  # fmt: skip
                picture = enhancer(picture).enhance(rng.uniform(*self.factor_range))
            image = np.asarray(picture)
        return image, label

    def __repr__(self) -> str:
        return f"RandomColorJitter(prob={self.prob}, factor_range={self.factor_range})"


@TRANSFORMS.register("Normalize")
class Normalize:
    """uint8 HWC -> float32 CHW: ``(x / scale - mean) / std`` in float32; label -> int64. No draw.

    ``scale`` 255 (default): mean / std on the 0-1 scale (ImageNet's, DANet). ``NormalizePixels`` is the
    same step on the 0-255 scale (``scale`` 1, FactSeg). Dividing by 1.0 is exact, so both scales run one
    arithmetic.
    """

    name = "Normalize"

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 scale: float = 255.0) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise TransformConfigError(f"{self.name} needs 3 means and 3 positive stds, got {mean!r}, {std!r}")
        if not float(scale) > 0:
            raise TransformConfigError(f"{self.name}.scale must be positive, got {scale!r}")
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.scale = float(scale)

    def __call__(self, image: np.ndarray, label: Label, rng: random.Random | None = None
                 ) -> Tuple[np.ndarray, Label]:
        x = image.astype(np.float32) / np.float32(self.scale)
        x = (x - self.mean) / self.std  # h, w, 3
        image = np.ascontiguousarray(x.transpose(2, 0, 1))  # 3, h, w
        if label is not None:
            label = label.astype(np.int64)
        return image, label

    def __repr__(self) -> str:
        return f"{self.name}(mean={self.mean.tolist()}, std={self.std.tolist()})"


@TRANSFORMS.register("NormalizePixels")
class NormalizePixels(Normalize):
    """``Normalize`` on the 0-255 scale: ``(x - mean) / std`` (no /255), FactSeg's ImageNet values by default.

    In float32 with float32 mean/std, as torchvision's ``normalize`` on SimpleCV's ``ToTensor(True)``
    output (``255 * (x / 255)``, which is exactly ``x`` for every uint8 value).
    """

    name = "NormalizePixels"

    def __init__(self, mean: Sequence[float] = ISAID_MEAN, std: Sequence[float] = ISAID_STD) -> None:
        super().__init__(mean, std, scale=1.0)


@TRANSFORMS.register("DANetTrain")
def danet_train_transforms(
    base_size: int = 1024,
    crop_size: Size = 768,
    scale_range: Sequence[float] | None = (0.75, 2.0),
    flip_prob: float = 0.5,
    gaussian_blur: bool = False,
    color_jitter: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    seed: int | None = None,
) -> Compose:
    """The official DANet training augmentation (module docstring, steps 1-7).

    Args:
        base_size (int): short side at scale 1. Default 1024.
        crop_size (int | (h, w)): crop. Default 768.
        scale_range ((lo, hi) | None): short-side factors. Default (0.75, 2.0); None = no scaling draw.
        flip_prob (float): horizontal flip probability. Default 0.5.
        gaussian_blur (bool): Paddle-port blur, probability 0.3, radius U[0, 1). Default False.
        color_jitter (bool): Paddle-port ImageEnhance jitter, probability 0.3, factors U[0.75, 1.25].
            Default False.
        mean, std: normalisation (ImageNet by default).
        seed: seed of the generator used when no ``rng`` is passed.
    """
    steps: List[Any] = [
        RandomHorizontalFlip(flip_prob),
        RandomScale(base_size, scale_range),
        PadToCrop(crop_size, 0, 255),
        RandomCrop(crop_size),
    ]
    if gaussian_blur:
        steps.append(RandomGaussianBlur())
    if color_jitter:
        steps.append(RandomColorJitter())
    steps.append(Normalize(mean, std))
    return Compose(steps, seed=seed)


@TRANSFORMS.register("Val")
def val_transforms(
    base_size: int | None = None,
    crop_size: Size | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Compose:
    """Validation: optional ``ResizeShort(base_size)``, optional ``CenterCrop(crop_size)``, ``Normalize``.

    Default: normalise only (full resolution, what the official evaluation feeds its sliding window).
    ``base_size == crop_size`` reproduces the official quick validation ``_val_sync_transform``.
    """
    steps: List[Any] = []
    if base_size is not None:
        steps.append(ResizeShort(base_size))
    if crop_size is not None:
        steps.append(CenterCrop(crop_size))
    steps.append(Normalize(mean, std))
    return Compose(steps)


@TRANSFORMS.register("FactSegTrain")
def factseg_train_transforms(crop_size: int = 896, flip_prob: float = 0.5,
                             rotate_ks: Sequence[int] = (0, 1, 2, 3)) -> Compose:
    """Official FactSeg training augmentation (``rsrepro.data.isaid`` docstring), in its draw order."""
    return Compose([
        RandomHorizontalFlip(flip_prob),
        RandomVerticalFlip(flip_prob),
        RandomRotate90K(rotate_ks),
        PadToCrop(crop_size, image_fill=0, label_fill=ISAID_IGNORE_INDEX),
        NormalizePixels(),
    ])


@TRANSFORMS.register("FactSegVal")
def factseg_val_transforms() -> Compose:
    """FactSeg validation: the 0-255 normalisation only (whole images; the evaluator cuts the windows)."""
    return Compose([NormalizePixels()])


def _config_steps(config: Sequence[Any] | Mapping[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    if isinstance(config, Mapping):
        items = []
        for name, options in config.items():
            if options is None:
                options = {}
            if not isinstance(options, Mapping):
                raise TransformConfigError(
                    f"options of transform '{name}' must be a mapping, got {options!r}"
                )
            items.append((str(name), dict(options)))
        return items
    if isinstance(config, (list, tuple)):
        items = []
        for position, step in enumerate(config):
            if isinstance(step, str):
                items.append((step, {}))
            elif isinstance(step, Mapping) and "type" in step:
                options = {k: v for k, v in step.items() if k != "type"}
                items.append((str(step["type"]), options))
            else:
                raise TransformConfigError(
                    f"transform #{position} must be a name or a mapping with a 'type' key, got {step!r}"
                )
        return items
    raise TransformConfigError(f"a transform config must be a list or a mapping, got {type(config).__name__}")


def build_transforms(config: Sequence[Any] | Mapping[str, Any], seed: int | None = None) -> Compose:
    """Build a ``Compose`` from a config (e.g. loaded from YAML).

    Accepted forms::

        [{"type": "RandomHorizontalFlip", "prob": 0.5}, {"type": "Normalize"}]
        {"RandomHorizontalFlip": {"prob": 0.5}, "Normalize": {}}   # order as written
        [{"type": "DANetTrain", "base_size": 1024, "crop_size": 768, "gaussian_blur": True}]

    Names: ``TRANSFORMS.names()``. Unknown names, unknown options and bad values raise
    ``TransformConfigError`` naming the step.
    """
    steps = []
    for position, (name, options) in enumerate(_config_steps(config)):
        try:
            steps.append(TRANSFORMS.build(name, **options))
        except TransformConfigError as exc:
            raise TransformConfigError(f"transform #{position} ({name}): {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise TransformConfigError(f"transform #{position} ({name}): {message}") from exc
    return Compose(steps, seed=seed)
