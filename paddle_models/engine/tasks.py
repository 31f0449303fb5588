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
function (``scores.SEG_SCORES`` / ``scores.CD_SCORES``). A loss whose parts are worth logging exposes
them one way: ``loss.terms(outputs, labels) -> {name: tensor}``, whose sum is the loss (named by
``task.output_names`` in order when the count matches, else by the loss's own names); a loss without
``terms`` is logged as one term. A new task is a ``Task`` subclass registered in ``TASKS``.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

from rsrepro.data import DATASETS, normalization_of, normalization_spec
from rsrepro.data.cd_transforms import PREPROCESSING, resolve_means
from rsrepro.data.cdd import CDDDataset
from rsrepro.factseg import SIZE_DIVISOR
from rsrepro.registry import Registry

from .evaluator import ChangeDetectionEvaluator, SegmentationEvaluator, SegProtocol, predict_scores
from .factseg_eval import FactSegEvaluator, FactSegSlidingWindow
from .scores import CD_SCORES, SEG_SCORES, as_outputs

__all__ = ["TASKS", "Task", "SegmentationTask", "ChangeDetectionTask", "apply_cd_preprocess", "build_task"]

TASKS = Registry("task")

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

    def loss_terms(self, loss_fn: Any, outputs: Any, label: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        """``{"loss": total, "<term>": value, ...}``; total (the sum of the terms, as the loss's forward
        sums them) is what is back-propagated."""
        if not hasattr(loss_fn, "terms"):
            return {"loss": loss_fn(outputs, label)}
        named = loss_fn.terms(outputs, label)
        if len(self.output_names) == len(named):
            named = dict(zip(self.output_names, named.values()))
        return {"loss": sum(named.values()), **named}

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

    def build_evaluator(self, dataset: Any = None, eval_cfg: Mapping[str, Any] | None = None) -> Any:
        """``SegmentationEvaluator``; with ``eval.mode: slide`` and ``eval.window_rule: factseg`` the
        streamed official FactSeg evaluator (``factseg_eval.FactSegEvaluator``, same interface)."""
        eval_cfg = eval_cfg if eval_cfg is not None else self.cfg["eval"]
        ignore = eval_cfg.get("ignore_index", getattr(dataset, "IGNORE_INDEX", 255))
        protocol = self.protocol(dataset, eval_cfg)
        if protocol.mode == "slide" and protocol.window_rule == "factseg":
            return self._factseg_evaluator(protocol, dataset, eval_cfg, ignore)
        return SegmentationEvaluator(protocol, self.num_classes(dataset), ignore,
                                     self.class_names(dataset), eval_cfg.get("fg_start"))

    def _factseg_evaluator(self, protocol: SegProtocol, dataset: Any, eval_cfg: Mapping[str, Any],
                           ignore: int | None) -> Any:
        unsupported = [what for what, bad in (("eval.flip", protocol.flip), ("eval.scales", protocol.scales != (1.0,)),
                                              ("eval.base_size", protocol.base_size is not None)) if bad]
        if unsupported:  # the config check (run_config._eval_problems) reports these with their source
            raise ValueError(f"eval.window_rule 'factseg' evaluates with FactSeg's official protocol (one scale, "
                             f"no flip, streamed); not supported: {', '.join(unsupported)}")
        spec = normalization_spec(dataset)
        score = SEG_SCORES[protocol.score]

        def score_fn(out: Any) -> paddle.Tensor:
            return score.post(score.pre(as_outputs(out), protocol.output_index))

        window = FactSegSlidingWindow(
            window=protocol.crop_size, stride=protocol.effective_stride(),
            size_divisor=protocol.pad_multiple or SIZE_DIVISOR,
            # raw uint8 images are normalised per window on the 0-255 scale
            mean=tuple(m * spec["scale"] for m in spec["mean"]), std=tuple(s * spec["scale"] for s in spec["std"]),
            num_classes=self.num_classes(dataset), score_fn=score_fn)
        return FactSegEvaluator(window, ignore, self.class_names(dataset), eval_cfg.get("fg_start"))

    def predict(self, model: paddle.nn.Layer, inputs: Sequence[paddle.Tensor], protocol: SegProtocol) -> np.ndarray:
        return predict_scores(model, inputs[0], protocol).argmax(axis=1).numpy()

    def export_head(self, outputs: Tuple[Any, ...], inputs: Sequence[paddle.Tensor], output: str) -> paddle.Tensor:
        index = int(self.cfg["eval"].get("output_index", 0))
        score_name = self.cfg["eval"].get("score", "exp")
        if score_name in SEG_SCORES and SEG_SCORES[score_name].probabilities:  # FactSeg: fused probabilities
            probability = SEG_SCORES[score_name].pre(outputs, index)
            if output == "logits":
                raise ValueError(f"export.output 'logits': eval.score '{score_name}' gives class probabilities "
                                 "computed by the model, there are no logits to export; use probability or label")
            return probability if output == "probability" else probability.argmax(axis=1)
        logits = outputs[index]
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

    def preprocess_spec(self, dataset: Any = None) -> Dict[str, Any] | None:
        """How uint8 RGB t0 / t1 images become model inputs, read from the config's dataset section
        (val, else train) with ``CDDDataset``'s defaults; written to deploy.yml and applied by
        :func:`apply_cd_preprocess`. None for a dataset class that is not a ``CDDDataset``.

        "dasnet": RGB -> BGR, minus the per-time BGR mean (t0 and t1 differ), no std, no scaling;
        "lsnet": raw 0-255 RGB. ``dataset``: the class or an instance (default: the configured type).
        """
        section = self.cfg["dataset"].get("val") or self.cfg["dataset"].get("train") or {}
        cls = dataset if isinstance(dataset, type) or dataset is None else type(dataset)
        if cls is None and section.get("type") in DATASETS.names():
            cls = DATASETS.get(section["type"])
        if cls is None or not issubclass(cls, CDDDataset):
            return None
        defaults = inspect.signature(CDDDataset).parameters
        kind = section.get("preprocessing", defaults["preprocessing"].default)
        if kind == "dasnet":
            means = resolve_means(section.get("means", defaults["means"].default))
            return {"type": "dasnet", "channel_order": "BGR", "mean": [[float(v) for v in m] for m in means],
                    "std": None, "scale": 1.0,
                    "formula": "x_i = float64(image_i[:, :, ::-1]) - mean[i] (BGR, input i = t0, t1); "
                               "HWC -> CHW; float32"}
        return {"type": kind, "channel_order": "RGB", "mean": None, "std": None, "scale": 1.0,
                "formula": "x_i = float32(image_i) (raw 0-255 RGB); HWC -> CHW"}

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


def apply_cd_preprocess(spec: Mapping[str, Any], t0: np.ndarray, t1: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Apply a :meth:`ChangeDetectionTask.preprocess_spec` to two uint8 RGB images -> two float32
    3 x H x W arrays, with the dataset's own functions (``rsrepro.data.cd_transforms.PREPROCESSING``), so that
    deployment feeds the model bit for bit what evaluation feeds it."""
    if spec.get("type") not in PREPROCESSING:
        raise ValueError(f"preprocess type must be one of {sorted(PREPROCESSING)}, got {spec.get('type')!r}")
    means = spec.get("mean") or (None, None)
    fn = PREPROCESSING[spec["type"]]
    return fn(t0, means[0]), fn(t1, means[1])


def build_task(cfg: Mapping[str, Any]) -> Task:
    return TASKS.get(cfg["task"]["type"])(cfg)

