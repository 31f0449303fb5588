"""Score functions: how a model's raw outputs become the per-pixel scores that evaluation, prediction and
export use (a leaf of the engine: imports models and layers, no engine module).

- ``SEG_SCORES`` (segmentation; ``eval.score``): "exp" (DANet: ``exp(logits [+ flipped logits])``, the
  official ``module_inference``), "logits", "softmax", "fused" (FactSeg's fused class probability, the
  eval-mode output, or fused from ``(fg, bi)`` logits);
- ``CD_SCORES`` (change detection; ``eval.cd_score``): "softmax" (probability of class 1 of 2-class logits,
  LSNet), "l2_distance" (``paddle_models.dasnet.change_distance``, the official ``||e0 - e1 + 1e-6||_2`` of a
  pair of embeddings, DASNet), each resized to the label size (bilinear, align_corners=True), with the
  threshold sweep it is evaluated over by default;
- ``resolve_thresholds``: a threshold-sweep spec from the config -> the thresholds.

A model with an unusual output adds its score here; nothing else in the engine changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

from rsrepro.metrics import dasnet_official_thresholds, dasnet_v2_thresholds

from ..dasnet import change_distance
from ..factseg import fused_probability
from ..layers import resize

__all__ = [
    "as_outputs",
    "SegScore",
    "SEG_SCORES",
    "fused_scores",
    "CDScore",
    "CD_SCORES",
    "resolve_thresholds",
]


def as_outputs(out: Any) -> Tuple[Any, ...]:
    """A model's outputs as a tuple (a single tensor becomes a 1-tuple)."""
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)



def fused_scores(outputs: Any) -> paddle.Tensor:
    """Class probabilities from whatever the FactSeg model returned (``output`` auto/probability/all/logits)."""
    if isinstance(outputs, (list, tuple)):
        if len(outputs) == 1:  # the engine's as_outputs() of the eval-mode probability
            return outputs[0]
        if len(outputs) == 3:
            return outputs[2]
        if len(outputs) == 2:
            return fused_probability(outputs[0], outputs[1])
        raise ValueError(f"unexpected FactSeg outputs: a {type(outputs).__name__} of {len(outputs)}")
    return outputs



# ------------------------------------------------------------------------------- segmentation
@dataclass(frozen=True)
class SegScore:
    """``pre(outputs, output_index)`` gives a (B, K, h, w) tensor; the flipped pass is added to it
    in that space; ``post`` turns the sum into the score that windows and scales accumulate."""

    pre: Callable[[Tuple[Any, ...], int], paddle.Tensor]
    post: Callable[[paddle.Tensor], paddle.Tensor]
    doc: str = ""
    # True when ``pre`` gives class probabilities computed by the model itself (no logits to export).
    probabilities: bool = False


def _logits(outputs: Tuple[Any, ...], index: int) -> paddle.Tensor:
    return outputs[index]


def _identity(x: paddle.Tensor) -> paddle.Tensor:
    return x


SEG_SCORES: Dict[str, SegScore] = {
    "exp": SegScore(_logits, paddle.exp, "DANet: exp(logits [+ flipped logits])"),
    "logits": SegScore(_logits, _identity, "logits [+ flipped logits]"),
    "softmax": SegScore(lambda o, i: F.softmax(o[i], axis=1), _identity,
                        "softmax [+ flipped softmax]"),
    "fused": SegScore(lambda o, i: fused_scores(o), _identity,
                      "FactSeg fused class probability [+ flipped]; output_index is not used", probabilities=True),
}


# ---------------------------------------------------------------------------- change detection
@dataclass(frozen=True)
class CDScore:
    """``fn(outputs, index, label_hw) -> (score (B, H, W), logits (B, 2, H, W) or None)``."""

    fn: Callable[[Tuple[Any, ...], int, Tuple[int, int]], Tuple[paddle.Tensor, paddle.Tensor | None]]
    default_thresholds: Callable[[], np.ndarray]
    doc: str = ""


def _resize_to(x: paddle.Tensor, size: Sequence[Any]) -> paddle.Tensor:
    # Under export (static graph) the sizes are symbolic: always resize (an identity when equal).
    if paddle.in_dynamic_mode() and tuple(x.shape[2:]) == tuple(size):
        return x
    return resize.bilinear(x, size)


def _softmax_change(outputs: Tuple[Any, ...], index: int, size: Tuple[int, int]):
    logits = outputs[index]
    if logits.ndim != 4 or logits.shape[1] != 2:
        raise ValueError(f"cd_score 'softmax' expects 2-class logits (B, 2, H, W), got {logits.shape}")
    logits = _resize_to(logits, size)
    return F.softmax(logits, axis=1)[:, 1], logits


def _l2_distance(outputs: Tuple[Any, ...], index: int, size: Tuple[int, int]):
    # The model's own definition (torch F.pairwise_distance, eps 1e-6, as the official validation);
    # resized here because under export the size is symbolic.
    pair = outputs[index]
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError("cd_score 'l2_distance' expects the selected output to be a pair [t0, t1] of "
                         f"embeddings, got {type(pair).__name__}")
    distance = change_distance(outputs, None, index)  # b, h, w
    return _resize_to(distance.unsqueeze(1), size)[:, 0], None


CD_SCORES: Dict[str, CDScore] = {
    "softmax": CDScore(_softmax_change, lambda: np.linspace(0.0, 1.0, 101),
                       "probability of class 1 of 2-class logits (LSNet); argmax decision available"),
    "l2_distance": CDScore(_l2_distance, dasnet_v2_thresholds,
                           "DASNet change_distance of a [t0, t1] embedding pair (eps 1e-6), resized to the label"),
}


def resolve_thresholds(spec: Any, default: Callable[[], np.ndarray]) -> np.ndarray:
    """``None`` -> the score's default; "dasnet_official" / "dasnet_v2"; a list; {start, stop, num}."""
    if spec is None:
        return default()
    if isinstance(spec, str):
        named = {"dasnet_official": dasnet_official_thresholds, "dasnet_v2": dasnet_v2_thresholds}
        if spec not in named:
            raise ValueError(f"eval.thresholds: unknown name {spec!r}; known: {sorted(named)}")
        return named[spec]()
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"start", "stop", "num"})
        if unknown or "stop" not in spec or "num" not in spec:
            raise ValueError(f"eval.thresholds as a mapping needs start, stop, num; got {dict(spec)}")
        return np.linspace(float(spec.get("start", 0.0)), float(spec["stop"]), int(spec["num"]))
    return np.asarray(spec, dtype=np.float64)


