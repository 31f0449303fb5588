"""Alignment cases: what each check builds, feeds and compares for every registered model.

A case names a model configuration (``danet_r50``), its input shapes per size (``small`` runs in
CI, ``full`` is what the README reports), how to make labels for its loss, which modules to hook
for the float64 semantic-equality evidence, and the real training recipe that ``check_train``
uses. Adding a model = adding a case here (plus its two model files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

Shape = Tuple[int, ...]


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
    num_classes: int = 19
    hook_modules: List[str] = field(default_factory=list)
    # Training recipe used by check_backward (optimizer only) and check_train (both).
    optimizer: Dict[str, Any] = field(default_factory=dict)
    lr_scheduler: Dict[str, Any] = field(default_factory=dict)
    train_shapes: Dict[str, Shape] = field(default_factory=dict)
    input_scale: float = 1.0  # inputs are N(0, 1) * scale (LSNet takes raw 0-255 pixels)
    logit_layers: List[str] = field(default_factory=list)  # see harness.randomize_reference
    logit_scale: float = 1.0
    extra_loss_variants: Dict[str, Dict[str, Any]] = field(default_factory=dict)
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


DANET_HOOKS = [
    "pretrained.layer1", "pretrained.layer2", "pretrained.layer3", "pretrained.layer4",
    "head.conv5a", "head.sa", "head.conv51", "head.conv5c", "head.sc", "head.conv52", "head",
]
DANET_OPTIMIZER = {"type": "momentum", "momentum": 0.9, "weight_decay": 1e-4, "lr_mult": {"head.": 10.0}}
DANET_SCHEDULE = {"type": "poly", "base_lr": 0.003, "power": 0.9, "end_lr": 0.0}

DANET_ZERO_GRADS = {
    "head.sa.key_conv.bias": "adds q_i . b to every energy of row i; softmax is shift-invariant per row",
}
DANET_LOGITS = {"logit_layers": ["head.conv6.1", "head.conv7.1", "head.conv8.1"], "logit_scale": 40.0}

CASES: Dict[str, AlignCase] = {}


def register_case(case: AlignCase) -> AlignCase:
    if case.name in CASES:
        raise KeyError(f"alignment case '{case.name}' registered twice")
    CASES[case.name] = case
    return case


register_case(AlignCase(
    name="danet_r50", model="danet", model_kwargs={"backbone": "resnet50", "num_classes": 19},
    loss="danet_ce", loss_kwargs={}, input_shapes={"small": (2, 3, 64, 64), "full": (1, 3, 512, 512)},
    extra_loss_variants={"weighted": {"weights": (1.0, 0.4, 0.4)}, "ignore_neg1": {"ignore_index": -1}},
    make_labels=segmentation_labels(19), hook_modules=DANET_HOOKS, **DANET_LOGITS,
    zero_grad_params=DANET_ZERO_GRADS,
    optimizer=DANET_OPTIMIZER, lr_scheduler=DANET_SCHEDULE,
    train_shapes={"small": (2, 3, 48, 48), "full": (2, 3, 256, 256)},
))
register_case(AlignCase(
    name="danet_r101_mg", model="danet",
    model_kwargs={"backbone": "resnet101", "num_classes": 19, "multi_grid": True,
                  "multi_dilation": (4, 8, 16)},
    loss="danet_ce", loss_kwargs={}, input_shapes={"small": (1, 3, 64, 64), "full": (1, 3, 512, 512)},
    make_labels=segmentation_labels(19), hook_modules=DANET_HOOKS, **DANET_LOGITS,
    zero_grad_params=DANET_ZERO_GRADS,
    optimizer=DANET_OPTIMIZER, lr_scheduler=DANET_SCHEDULE,
    train_shapes={"small": (2, 3, 48, 48), "full": (2, 3, 256, 256)},
))


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
