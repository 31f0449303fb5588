"""Alignment cases: what each check builds, feeds and compares for every registered model.

A case names a model configuration (``danet_r50``), its input shapes per size (``small`` runs in
CI, ``full`` is what the README reports), how to make labels for its loss, which modules to hook
for the float64 semantic-equality evidence, and the real training recipe that ``check_train``
uses. Each model's cases live in ``alignment/models/<model>.py`` (imported at the end of this module);
adding a model = one file there plus its two model files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

Shape = Tuple[int, ...]


def binary_labels(change_fraction: float = 0.2) -> Callable:
    """0/1 change labels (B, H, W) made of blocks, as real change masks are."""

    def make(rng: np.random.RandomState, shape: Shape) -> np.ndarray:
        b, _, h, w = shape
        blocks = (rng.rand(b, max(1, h // 8), max(1, w // 8)) < change_fraction).astype("int64")
        return np.kron(blocks, np.ones((1, 8, 8), dtype="int64"))[:, :h, :w]

    return make


def segmentation_labels(num_classes: int, ignore_fraction: float = 0.1) -> Callable:
    def make(rng: np.random.RandomState, shape: Shape) -> np.ndarray:
        b, _, h, w = shape
        labels = rng.randint(0, num_classes, size=(b, h, w)).astype("int64")
        labels[rng.rand(b, h, w) < ignore_fraction] = 255
        return labels

    return make


@dataclass
class AlignCase:
    name: str
    model: str
    model_kwargs: Dict[str, Any]
    loss: str
    loss_kwargs: Dict[str, Any]
    input_shapes: Dict[str, Shape]  # size -> shape of ONE input (B, C, H, W)
    make_labels: Callable[[np.random.RandomState, Shape], np.ndarray]
    num_inputs: int = 1  # 2 for change detection (t0, t1)
    task: str = "segmentation"
    dataset: str = "cityscapes"  # key of alignment.check_data.DATA_CHECKS
    num_classes: int = 19
    hook_modules: List[str] = field(default_factory=list)
    # Training recipe used by check_backward (optimizer only) and check_train (both).
    optimizer: Dict[str, Any] = field(default_factory=dict)
    lr_scheduler: Dict[str, Any] = field(default_factory=dict)
    train_shapes: Dict[str, Shape] = field(default_factory=dict)
    input_scale: float = 1.0  # inputs are N(0, 1) * scale
    input_range: Tuple[float, float] | None = None  # uniform inputs instead (LSNet: raw 0-255 pixels)
    logit_layers: List[str] = field(default_factory=list)  # see harness.randomize_reference
    logit_scale: float = 1.0
    extra_loss_variants: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    extra_checks: List[str] = field(default_factory=list)  # model-specific steps run by check_all
    # check_backward runs the case's optimizer at this constant lr: small enough that 5 steps on
    # one batch stay stable with the rescaled classifier (logits O(10)).
    backward_lr: float = 1e-4
    # Parameters whose gradient is analytically zero, with the reason. Their computed gradients
    # are pure rounding noise on both sides, so instead of a relative diff the check requires
    # both to be at noise level (<= 1e-6 x the largest gradient of the model).
    zero_grad_params: Dict[str, str] = field(default_factory=dict)

    def loss_variants(self) -> Dict[str, Dict[str, Any]]:
        """The default loss config plus every variant the loss check must cover."""
        return {"default": dict(self.loss_kwargs), **self.extra_loss_variants}


CASES: Dict[str, AlignCase] = {}


def register_case(case: AlignCase) -> AlignCase:
    if case.name in CASES:
        raise KeyError(f"alignment case '{case.name}' registered twice")
    CASES[case.name] = case
    return case


def get_case(name: str) -> AlignCase:
    if name not in CASES:
        raise SystemExit(f"unknown alignment case '{name}'; known: {', '.join(sorted(CASES))}")
    return CASES[name]


def resolve_cases(names: List[str] | None) -> List[AlignCase]:
    """Case names, or model names (every case of that model), or None / 'all' for everything."""
    if not names or names == ["all"]:
        return list(CASES.values())
    out: List[AlignCase] = []
    for name in names:
        if name in CASES:
            out.append(CASES[name])
            continue
        matches = [c for c in CASES.values() if c.model == name]
        if not matches:
            raise SystemExit(f"unknown alignment case or model '{name}'; known cases: "
                             f"{', '.join(sorted(CASES))}")
        out.extend(matches)
    return out


def _load_model_cases() -> None:
    from rsrepro.discovery import import_submodules

    from . import models

    import_submodules(models.__name__, models.__path__)


_load_model_cases()
