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
class ConvergenceSize:
    """One size of a case's training-alignment run (``alignment/check_convergence.py``).

    ``data``: keyword arguments of the synthetic generator (sizes, sample counts); ``batch_size``;
    ``length``: ("iters", n) or ("epochs", n) of the float32 runs (epochs over the small generated
    training set keep an epoch-based schedule whole); ``float64_iters``: iterations of the float64 run;
    ``crop``: DANet base / crop size or FactSeg window; ``evals``: evaluations during a float32 run
    (evenly spaced, the last at the end); ``seeds`` of the float32 runs; ``float64_batch`` /
    ``float64_crop``: a smaller batch / crop for the float64 run (an equality check needs no large tensors)."""

    data: Dict[str, Any]
    batch_size: int
    length: Tuple[str, int]
    float64_iters: int
    crop: int = 0
    evals: int = 4
    seeds: Tuple[int, ...] = (0, 1, 2)
    float64_batch: int | None = None
    float64_crop: int | None = None

    def for_float64(self) -> ConvergenceSize:
        """This size with the float64 run's batch and crop."""
        from dataclasses import replace

        return replace(self, batch_size=self.float64_batch or self.batch_size, crop=self.float64_crop or self.crop)


@dataclass
class ConvergenceSpec:
    """How a case trains to the end in both frameworks: the paper config (Paddle), the official
    recipe (``torch_ref.engine.train.RECIPES``), the dataset family, the final metric, the sizes."""

    config: str
    recipe: str
    family: str  # cityscapes | cdd_dasnet | cdd_lsnet | isaid
    metric: str  # miou | max_f | f1
    sizes: Dict[str, ConvergenceSize]
    # loss options of the float64 run on both sides (and why): a discontinuous step (FactSeg's SOM top-k)
    # turns a rounding-sized difference into O(1) ones, which the float64 identity proof must avoid
    float64_loss: Dict[str, Any] = field(default_factory=dict)
    float64_loss_reason: str = ""


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
    # size -> batch shape of the float64 evidence of check_backward / check_train when the float32 shape of that
    # size would take over 30 min in float64 (the full-size table shows the shapes each row ran at)
    evidence_shapes: Dict[str, Shape] = field(default_factory=dict)
    # training to the end in both frameworks (check_convergence); None: no such run for this case
    convergence: ConvergenceSpec | None = None

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
