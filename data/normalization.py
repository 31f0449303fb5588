"""How a dataset's pixels are normalised, as numbers: what deploy.yml records, what deployment applies and
what the evaluator pads with. Read from the transforms themselves, so the numbers can never drift
from what training and evaluation feed the model.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from .transforms import IMAGENET_MEAN, IMAGENET_STD, Compose, Normalize, build_transforms

__all__ = ["normalization_spec", "normalization_of"]


def normalization_spec(dataset: Any = None, transforms: Any = None) -> Dict[str, Any]:
    """``{"mean", "std", "scale"}`` such that the model input is ``(x / scale - mean) / std`` of uint8 x.

    Read from ``transforms`` (a transform config or callable) when given, else from the dataset's
    ``transform`` (an instance), else from the dataset class's ``default_val_transforms``; the first
    ``Normalize`` (0-1 scale: ``scale`` 255) or ``NormalizePixels`` (0-255 scale: ``scale`` 1, FactSeg)
    step counts. ImageNet's 0-1 values when none is found. ``tools/infer.py`` normalises with exactly
    this float32 arithmetic, so a deployed model sees the same input as dygraph.
    """
    transform = transforms
    if transform is not None and not callable(transform):
        transform = build_transforms(transform)
    if transform is None and dataset is not None and not isinstance(dataset, type):
        transform = getattr(dataset, "transform", None)
    if transform is None and dataset is not None:
        factory = getattr(dataset if isinstance(dataset, type) else type(dataset), "default_val_transforms", None)
        transform = factory() if factory is not None else None
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    for step in steps:
        if isinstance(step, Normalize):  # NormalizePixels too (scale 1)
            # the steps hold float32: the shortest decimal that gives back the same float32 (123.675)
            return {"mean": [float(str(np.float32(v))) for v in step.mean],
                    "std": [float(str(np.float32(v))) for v in step.std],
                    "scale": step.scale}
    return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": 255.0}


def normalization_of(dataset: Any) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """(mean, std) on the 0-1 pixel scale (``x / 255``) of the dataset's normalisation
    (:func:`normalization_spec`; a 0-255 ``NormalizePixels`` is divided by 255).

    The evaluator pads with the value that is black after normalisation, ``-mean / std``, as the
    official DANet ``pad_image`` (scale-free).
    """
    spec = normalization_spec(dataset)
    divisor = 255.0 / spec["scale"]
    return tuple(m / divisor for m in spec["mean"]), tuple(s / divisor for s in spec["std"])
