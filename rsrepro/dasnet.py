"""DASNet / DASNet-V2 settings shared by both trees (framework-free).

Contrastive-loss configuration (``contrastive_config``), read by ``paddle_models/losses/
dasnet_contrastive.py`` and ``torch_ref/losses/dasnet_contrastive.py`` so that both sides accept and
refuse exactly the same arguments, and the state-dict keys that the V2 attention ablation removes
(``ablation_dropped_keys``).

Loss per (t0, t1) embedding pair, per pixel with distance ``d`` and (soft) change label ``y``::

    unchanged = (1 - y) * max(d - m1, 0)^2          changed = y * max(m2 - d, 0)^2
    L = mean(w_u * unchanged + w_c * changed)                                  (balanced=False)
    L = sum(unchanged) / (sum(1 - y) + 1e-4) + sum(changed) / (sum(y) + 1e-4)   (balanced=True)

and the total is ``lambda_1 L_sa + lambda_2 L_ca + lambda_3 L_saca``.

Variants (defaults; every value can be overridden):

- ``official`` (lehaifeng/DASNet ``ContrastiveLoss1``): ``d = sqrt(sum_c (|x0 - x1| + 1e-6)^2)``,
  m1 = 0.3, m2 = 2.2, w_u = w_c = 1.
- ``weighted`` (silence-tang/DASNet-V2 ``CLNew``): the same distance and margins, w_u = 1/(1 - 0.147),
  w_c = 1/0.147 (0.147 = the changed-pixel fraction of CDD assumed by that code).
- ``cosine`` (DASNet-V2 README "cossim loss, m1 = 0.1, m2 = 0.8"; no code was published, so this is a
  RECONSTRUCTION): ``d = 1 - cos(x0, x1)`` in [0, 2], the V2 class weights, m1 = 0.1, m2 = 0.8.
  Why ``1 - cos``: the README's margins fit its [0, 2] range, and the V2 / official training scripts'
  own cosine distance (``various_distance(..., 'cos')``) is ``1 - F.cosine_similarity``; the official
  ``layer/loss.py`` ``CosContrastiveLoss`` uses ``1 - 2 cos / pi``, whose range [0.36, 1.64] lies
  above m1 = 0.1 (the unchanged term could never vanish), so it is not the one. Computed as ``|u0 - u1|^2 / 2`` with
  ``u = x / max(|x|, 1e-12)``: the same value as ``1 - <x0, x1> / (|x0| |x1|)`` for nonzero vectors, but
  without the cancellation of the quotient form in float32 gradients (measured on the dasnet_r50
  alignment outputs: Paddle's float32 gradient of the quotient form was 3-4e-6 off float64 while torch's
  was 6-8e-7; with this form both are within 6e-7). A zero vector gives d = 1/2 here (1 with
  ``F.cosine_similarity``); model outputs are unit vectors.

``class_weights``: ``None`` (the variant's), a pair ``(w_u, w_c)``, or ``"batch"``: the paper's WDMC
weights ``w = 1 / P`` from the class frequencies of the batch, ``P_U = mean(1 - y)``,
``P_C = mean(y)`` over the (resized, soft) label of each pair (an absent class gets weight
``1 / 1e-12``, multiplied by zeros). Note that ``mean(w_u * unchanged)`` with batch weights is
``sum(unchanged) / sum(1 - y)``: the batch-frequency WDMC and STANet's balanced loss differ only by
STANet's ``+ 1e-4`` in the denominators.

``balanced=True``: STANet's batch-balanced contrastive loss (Chen & Shi, Remote Sensing 2020,
github justchenhao/STANet ``models/loss.py`` ``BCL``) with this loss's distance and margins: the two
class sums divided by the class pixel counts + 1e-4, as STANet's code (its paper has an extra 1/2;
the code, kept here, does not). STANet itself is ``margins=(0.0, 2.0), balanced=True`` on the L2
distance. Combined with ``class_weights`` it would weight twice, so that is refused.

``margins``: m2 = 2.2 (official) exceeds 2, the largest L2 distance between unit vectors, so the
changed term never reaches zero and keeps pushing changed pairs apart; kept for parity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Sequence, Tuple

__all__ = [
    "V2_CHANGED_FRACTION",
    "V2_CLASS_WEIGHTS",
    "VARIANTS",
    "TERM_NAMES",
    "BALANCED_EPS",
    "FREQUENCY_FLOOR",
    "ContrastiveConfig",
    "contrastive_config",
    "ablation_dropped_keys",
]

V2_CHANGED_FRACTION = 0.147
V2_CLASS_WEIGHTS = (1.0 / (1.0 - V2_CHANGED_FRACTION), 1.0 / V2_CHANGED_FRACTION)
VARIANTS: Dict[str, Dict[str, Any]] = {
    "official": {"distance": "l2", "margins": (0.3, 2.2), "class_weights": (1.0, 1.0)},
    "weighted": {"distance": "l2", "margins": (0.3, 2.2), "class_weights": V2_CLASS_WEIGHTS},
    "cosine": {"distance": "cosine", "margins": (0.1, 0.8), "class_weights": V2_CLASS_WEIGHTS},
}
TERM_NAMES = ("sa", "ca", "saca")  # the three pairs, in the model's output order
BALANCED_EPS = 1e-4  # STANet: pos_num = sum(...) + 0.0001
FREQUENCY_FLOOR = 1e-12  # "batch" weights: 1 / max(P, floor)


@dataclass(frozen=True)
class ContrastiveConfig:
    """A validated loss configuration (see the module docstring)."""

    variant: str
    distance: str  # "l2" | "cosine"
    margins: Tuple[float, float]
    class_weights: Tuple[float, float] | str  # (w_unchanged, w_changed) or "batch"
    lambdas: Tuple[float, float, float]
    balanced: bool
    eps: float  # added to |x0 - x1| before squaring (l2 distance)


def _floats(value: Any, count: int, name: str) -> Tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != count:
        raise ValueError(f"dasnet_contrastive: {name} must be a sequence of {count} numbers, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise ValueError(f"dasnet_contrastive: {name} must hold finite numbers, got {value!r}")
        out.append(float(item))
    return tuple(out)


def contrastive_config(variant: str = "official", margins: Sequence[float] | None = None,
                       class_weights: Sequence[float] | str | None = None,
                       lambdas: Sequence[float] = (1.0, 1.0, 1.0), balanced: bool = False,
                       eps: float = 1e-6) -> ContrastiveConfig:
    """Validate the loss arguments; every error names the argument and what was expected."""
    if variant not in VARIANTS:
        raise ValueError(f"dasnet_contrastive: variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    defaults = VARIANTS[variant]
    m1, m2 = _floats(defaults["margins"] if margins is None else margins, 2, "margins")
    if not 0.0 <= m1 < m2:
        raise ValueError(f"dasnet_contrastive: margins (m1, m2) need 0 <= m1 < m2, got ({m1}, {m2})")
    if not isinstance(balanced, bool):
        raise ValueError(f"dasnet_contrastive: balanced must be true or false, got {balanced!r}")
    if balanced and class_weights is not None:
        raise ValueError("dasnet_contrastive: balanced=True already normalises each class by its pixel "
                         "count (STANet); class_weights would weight twice — leave class_weights unset")
    if balanced:
        weights: Tuple[float, float] | str = (1.0, 1.0)
    elif class_weights is None:
        weights = tuple(defaults["class_weights"])
    elif isinstance(class_weights, str):
        if class_weights != "batch":
            raise ValueError(f"dasnet_contrastive: class_weights must be a pair (w_unchanged, w_changed) "
                             f"or 'batch', got {class_weights!r}")
        weights = "batch"
    else:
        weights = _floats(class_weights, 2, "class_weights")
        if min(weights) < 0:
            raise ValueError(f"dasnet_contrastive: class_weights must be >= 0, got {class_weights!r}")
    lams = _floats(lambdas, 3, "lambdas (sa, ca, saca)")
    if min(lams) < 0 or max(lams) == 0:
        raise ValueError(f"dasnet_contrastive: lambdas must be >= 0 with at least one > 0, got {lambdas!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps < 1.0:
        raise ValueError(f"dasnet_contrastive: eps must be a number in [0, 1), got {eps!r}")
    return ContrastiveConfig(variant, defaults["distance"], (m1, m2), weights, lams, balanced, float(eps))


def ablation_dropped_keys(keys: Iterable[str], use_pam: bool, use_cam: bool,
                          head_prefix: str = "CNN.head.") -> List[str]:
    """Keys of a full DASNet(-V2) state dict that a model without PAM / CAM does not have.

    Remove them to load a full checkpoint into an ablated model (every other key is unchanged).
    """
    dropped = ([f"{head_prefix}sa."] if not use_pam else []) + ([f"{head_prefix}sc."] if not use_cam else [])
    return [k for k in keys if any(k.startswith(p) for p in dropped)]
