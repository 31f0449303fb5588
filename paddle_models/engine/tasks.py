"""Task adapters: what the trainer, evaluator, predictor and exporter need to know about a task.

The engine never looks inside a model. Everything task-specific goes through a ``Task``:

=====================  ==========================================  ================================
                       ``segmentation``                            ``change_detection``
=====================  ==========================================  ================================
batch from the loader  ``[image, label]``                          ``[t0, t1, label]``
model call             ``model(image)``                            ``model(t0, t1)``
loss terms             one per output (``task.output_names``)      idem
evaluator              ``SegmentationEvaluator`` (``SegProtocol``)  ``ChangeDetectionEvaluator``
best-model metric      ``miou``                                    ``max_f``
exported output        logits / probability / label of output 0    change score / probability /
                                                                   label (``eval.cd_score``)
=====================  ==========================================  ================================

A new model of an existing task needs only a config. A model with an unusual output adds a score
function (``evaluator.SEG_SCORES`` / ``evaluator.CD_SCORES``) and, if its loss returns one scalar but
has named parts worth logging, a loss-term splitter (``register_loss_terms``). A new task is a
``Task`` subclass registered in ``TASKS``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

from common.registry import Registry

from ..losses.cross_entropy import MultiOutputCrossEntropy, masked_cross_entropy
from .evaluator import (
    CD_SCORES,
    ChangeDetectionEvaluator,
    SegmentationEvaluator,
    SegProtocol,
    as_outputs,
    predict_scores,
)

__all__ = ["TASKS", "Task", "SegmentationTask", "ChangeDetectionTask", "register_loss_terms", "build_task"]

TASKS = Registry("task")

# loss class -> fn(loss, outputs, labels) -> list of UNWEIGHTED per-output terms; total = sum(w * t)
LossTerms = Callable[[Any, Sequence[Any], paddle.Tensor], Tuple[List[paddle.Tensor], Sequence[float]]]
_LOSS_TERMS: Dict[type, LossTerms] = {}


def register_loss_terms(loss_type: type) -> Callable[[LossTerms], LossTerms]:
    """Register how a loss splits into named terms for the logs (its forward must equal the sum)."""

    def decorator(fn: LossTerms) -> LossTerms:
        _LOSS_TERMS[loss_type] = fn
        return fn

    return decorator


@register_loss_terms(MultiOutputCrossEntropy)
def _multi_output_ce_terms(loss: MultiOutputCrossEntropy, outputs: Sequence[Any], labels: paddle.Tensor):
    # The same computation as MultiOutputCrossEntropy.forward, one term at a time.
    if len(outputs) != len(loss.weights):
        raise ValueError(f"expected {len(loss.weights)} outputs (one per weight), got {len(outputs)}")
    labels = labels.astype("int64")
    return [masked_cross_entropy(o, labels, loss.ignore_index) for o in outputs], loss.weights


class Task:
    """Base adapter. Subclasses set ``name``, ``num_inputs`` and ``best_metric`` and implement the
    evaluator / export hooks."""

    name = "task"
    num_inputs = 1
    best_metric = "loss"

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.output_names = list(cfg["task"].get("output_names") or [])

    # ---- training
    def split_batch(self, batch: Sequence[paddle.Tensor]) -> Tuple[List[paddle.Tensor], paddle.Tensor]:
        if len(batch) != self.num_inputs + 1:
            raise ValueError(f"task '{self.name}' expects batches of {self.num_inputs} input(s) + label, "
                             f"got {len(batch)} arrays (does the dataset fit the task?)")
        return list(batch[: self.num_inputs]), batch[self.num_inputs]

    def forward(self, model: paddle.nn.Layer, inputs: Sequence[paddle.Tensor]) -> Any:
        return model(*inputs)

    def term_name(self, index: int) -> str:
        return self.output_names[index] if index < len(self.output_names) else f"out{index}"

    def loss_terms(self, loss_fn: Any, outputs: Any, label: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        """``{"loss": total, "<term>": value, ...}``; total is what is back-propagated."""
        splitter = next((fn for cls, fn in _LOSS_TERMS.items() if isinstance(loss_fn, cls)), None)
        if splitter is None and hasattr(loss_fn, "terms"):
            named = loss_fn.terms(outputs, label)
            total = sum(named.values())
            return {"loss": total, **named}
        if splitter is None:
            return {"loss": loss_fn(outputs, label)}
        terms, weights = splitter(loss_fn, as_outputs(outputs), label)
        total = sum(w * t for w, t in zip(weights, terms))
        out = {"loss": total}
        for index, term in enumerate(terms):
            out[self.term_name(index)] = term
        return out

    # ---- evaluation / deployment hooks
    def build_evaluator(self, dataset: Any = None) -> Any:
        raise NotImplementedError

    def export_head(self, outputs: Tuple[Any, ...], inputs: Sequence[paddle.Tensor], output: str) -> paddle.Tensor:
        raise NotImplementedError


@TASKS.register("segmentation")
class SegmentationTask(Task):
    """Semantic segmentation: one image in, class logits out (first output evaluated)."""

    name = "segmentation"
    num_inputs = 1
    best_metric = "miou"

    def protocol(self, dataset: Any = None, eval_cfg: Mapping[str, Any] | None = None) -> SegProtocol:
        from .builder import normalization_of

        mean, std = normalization_of(dataset) if dataset is not None else ((0.485, 0.456, 0.406),
                                                                           (0.229, 0.224, 0.225))
        return SegProtocol.from_config(eval_cfg if eval_cfg is not None else self.cfg["eval"], mean, std)

    def num_classes(self, dataset: Any = None) -> int:
        n = self.cfg["model"].get("num_classes") or getattr(dataset, "NUM_CLASSES", None)
        if n is None:
            raise ValueError("cannot tell the number of classes: set model.num_classes")
        return int(n)

    def class_names(self, dataset: Any = None) -> List[str] | None:
        names = self.cfg["task"].get("class_names") or getattr(dataset, "CLASS_NAMES", None)
        return list(names) if names is not None and len(names) == self.num_classes(dataset) else None

    def build_evaluator(self, dataset: Any = None, eval_cfg: Mapping[str, Any] | None = None) -> SegmentationEvaluator:
        eval_cfg = eval_cfg if eval_cfg is not None else self.cfg["eval"]
        ignore = eval_cfg.get("ignore_index", getattr(dataset, "IGNORE_INDEX", 255))
        return SegmentationEvaluator(self.protocol(dataset, eval_cfg), self.num_classes(dataset), ignore,
                                     self.class_names(dataset), eval_cfg.get("fg_start"))

    def predict(self, model: paddle.nn.Layer, inputs: Sequence[paddle.Tensor], protocol: SegProtocol) -> np.ndarray:
        return predict_scores(model, inputs[0], protocol).argmax(axis=1).numpy()

    def export_head(self, outputs: Tuple[Any, ...], inputs: Sequence[paddle.Tensor], output: str) -> paddle.Tensor:
        logits = outputs[int(self.cfg["eval"].get("output_index", 0))]
        if output == "probability":
            return F.softmax(logits, axis=1)
        if output == "label":
            return logits.argmax(axis=1)
        return logits


@TASKS.register("change_detection")
class ChangeDetectionTask(Task):
    """Change detection: an image pair (t0, t1) in, a change score / 2-class logits out."""

    name = "change_detection"
    num_inputs = 2
    best_metric = "max_f"

    def build_evaluator(self, dataset: Any = None,
                        eval_cfg: Mapping[str, Any] | None = None) -> ChangeDetectionEvaluator:
        e = eval_cfg if eval_cfg is not None else self.cfg["eval"]
        index = e.get("output_index", 0)
        return ChangeDetectionEvaluator(score=e.get("cd_score", "softmax"), output_index=-1 if index is None else index,
                                        thresholds=e.get("thresholds"), decision=e.get("decision", "threshold"),
                                        threshold=e.get("threshold"), ignore_index=e.get("ignore_index", 255))

    def predict(self, model: paddle.nn.Layer, inputs: Sequence[paddle.Tensor],
                evaluator: ChangeDetectionEvaluator, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
        """(change mask 0/1, score) at the input size; ``threshold`` applies unless decision is argmax."""
        size = tuple(inputs[0].shape[-2:])
        score, logits = evaluator.scores(model, inputs[0], inputs[1], size)
        if evaluator.decision == "argmax" and logits is not None:
            return logits.argmax(axis=1).numpy(), score.numpy()
        return (score.numpy() >= threshold).astype(np.int64), score.numpy()

    def export_head(self, outputs: Tuple[Any, ...], inputs: Sequence[paddle.Tensor], output: str) -> paddle.Tensor:
        e = self.cfg["eval"]
        size = tuple(inputs[0].shape[-2:])
        score, logits = CD_SCORES[e.get("cd_score", "softmax")].fn(outputs, int(e.get("output_index", 0)), size)
        if output == "label":
            if logits is not None and e.get("decision") == "argmax":
                return logits.argmax(axis=1)
            threshold = e.get("threshold")
            if threshold is None:
                raise ValueError("export.output 'label' for change detection needs eval.threshold "
                                 "(or eval.decision: argmax)")
            return (score >= threshold).astype("int64")
        if output == "logits" and logits is not None:
            return logits
        return score


def build_task(cfg: Mapping[str, Any]) -> Task:
    return TASKS.get(cfg["task"]["type"])(cfg)

