"""Model outputs of either framework as named numpy arrays (duck-typed: no framework is imported)."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

__all__ = ["to_numpy", "flatten_outputs"]


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (``detach``), a Paddle tensor (``numpy``) or an array-like as a numpy array."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


def flatten_outputs(outputs: Any, prefix: str = "out") -> Dict[str, np.ndarray]:
    """Nested tuples / lists / dicts of tensors -> {"out.0": array, "out.1.0": array, ...}."""
    flat: Dict[str, np.ndarray] = {}
    if isinstance(outputs, dict):
        for key, value in outputs.items():
            flat.update(flatten_outputs(value, f"{prefix}.{key}"))
    elif isinstance(outputs, (list, tuple)):
        for i, value in enumerate(outputs):
            flat.update(flatten_outputs(value, f"{prefix}.{i}"))
    else:
        flat[prefix] = to_numpy(outputs)
    return flat
