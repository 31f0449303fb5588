"""Run configs: load, validate and registry-check a YAML run config.

``load_run_config(path, overrides)`` is the one entry point of every tool: it loads and validates the
YAML against the schema (``rsrepro.config``), then checks what only the registries know -- model / loss /
dataset keyword arguments against their factories' signatures, transform configs, the task name, the
optimizer and schedule sections, the evaluation scores and thresholds, ``num_classes`` against the
dataset -- and raises ONE ``ConfigError`` listing every problem (each naming its key and the file or
override it came from) before any data is read or any model is built.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

import paddle_models
from rsrepro.config import ConfigError, check_kwargs, load_config, raise_problems, source_of
from rsrepro.data import DATASETS, TransformConfigError, build_transforms

from .builder import MODEL_RESERVED, dataset_kwargs
from .optim import OPTIMIZER_KEYS
from .scores import CD_SCORES, SEG_SCORES, resolve_thresholds
from .tasks import TASKS

__all__ = ["ConfigError", "load_run_config", "check_run_config"]


def check_run_config(cfg: Mapping[str, Any]) -> None:
    """Registry-level checks of a validated config; raises ConfigError listing every problem."""
    problems: List[str] = []
    task = cfg["task"]["type"]
    if task not in TASKS.names():
        problems.append(f"{source_of(cfg, 'task.type')}: task.type: unknown task '{task}' "
                        f"(known: {', '.join(TASKS.names())})")
    model_cfg = cfg["model"]
    if model_cfg["type"] not in paddle_models.MODELS.names():
        problems.append(f"{source_of(cfg, 'model.type')}: model.type: unknown model '{model_cfg['type']}' "
                        f"(known: {', '.join(paddle_models.MODELS.names())})")
    else:
        problems += check_kwargs(cfg, "model", model_cfg, paddle_models.MODELS.get(model_cfg["type"]),
                                 reserved=MODEL_RESERVED)
    loss_cfg = cfg["loss"]
    if loss_cfg["type"] not in paddle_models.LOSSES.names():
        problems.append(f"{source_of(cfg, 'loss.type')}: loss.type: unknown loss '{loss_cfg['type']}' "
                        f"(known: {', '.join(paddle_models.LOSSES.names())})")
    else:
        problems += check_kwargs(cfg, "loss", loss_cfg, paddle_models.LOSSES.get(loss_cfg["type"]),
                                 reserved=("type",))
    for split in ("train", "val"):
        section = cfg["dataset"].get(split)
        if section is None:
            continue
        where = f"dataset.{split}"
        name = section.get("type")
        if name not in DATASETS.names():
            problems.append(f"{source_of(cfg, where + '.type')}: {where}.type: unknown dataset '{name}' "
                            f"(known: {', '.join(DATASETS.names())})")
            continue
        kwargs = dataset_kwargs(section)
        factory = DATASETS.get(name)
        problems += check_kwargs(cfg, where, {("transforms" if k == "transform" else k): v
                                              for k, v in kwargs.items()}, _signature_view(factory))
        if isinstance(kwargs.get("transform"), (list, dict)):
            try:
                build_transforms(kwargs["transform"])
            except TransformConfigError as exc:
                problems.append(f"{source_of(cfg, where + '.transforms')}: {where}.transforms: {exc}")
        classes = getattr(factory, "NUM_CLASSES", None)
        model_classes = model_cfg.get("num_classes")
        if classes is not None and model_classes is not None and int(model_classes) != int(classes):
            problems.append(f"{source_of(cfg, 'model.num_classes')}: model.num_classes: {model_classes} "
                            f"but dataset '{name}' has {classes} classes")
    unknown_opt = sorted(set(cfg["optimizer"]) - OPTIMIZER_KEYS)
    if unknown_opt:  # the schema already refuses these; kept in case the schema and optim drift apart
        problems.append(f"optimizer: unknown key(s) {unknown_opt}")
    problems += _eval_problems(cfg)
    names = cfg["task"].get("output_names")
    weights = loss_cfg.get("weights")
    if names is not None and weights is not None and len(names) != len(weights):
        problems.append(f"{source_of(cfg, 'task.output_names')}: task.output_names: {len(names)} names "
                        f"but loss.weights has {len(weights)} entries")
    raise_problems(problems)


def _eval_problems(cfg: Mapping[str, Any]) -> List[str]:
    ec, problems = cfg["eval"], []
    if ec["score"] not in SEG_SCORES:
        problems.append(f"{source_of(cfg, 'eval.score')}: eval.score: unknown score '{ec['score']}' "
                        f"(known: {', '.join(sorted(SEG_SCORES))})")
    if ec["cd_score"] not in CD_SCORES:
        problems.append(f"{source_of(cfg, 'eval.cd_score')}: eval.cd_score: unknown score '{ec['cd_score']}' "
                        f"(known: {', '.join(sorted(CD_SCORES))})")
    else:
        try:
            thresholds = resolve_thresholds(ec["thresholds"], CD_SCORES[ec["cd_score"]].default_thresholds)
            increasing = thresholds.size < 2 or bool((np.diff(thresholds) > 0).all())
            if thresholds.ndim != 1 or thresholds.size == 0 or not increasing:
                raise ValueError("thresholds must be a non-empty, strictly increasing list")
        except (ValueError, TypeError) as exc:
            problems.append(f"{source_of(cfg, 'eval.thresholds')}: eval.thresholds: {exc}")
    if ec["mode"] == "slide" and ec["crop_size"] is None:
        problems.append(f"{source_of(cfg, 'eval.mode')}: eval.mode: 'slide' needs eval.crop_size")
    if cfg["task"]["type"] == "segmentation" and ec["mode"] == "slide" and ec["window_rule"] == "factseg":
        # routed to the streamed FactSeg evaluator (tasks.SegmentationTask.build_evaluator)
        unsupported = [key for key, bad in (("eval.flip", ec["flip"]), ("eval.multi_scales", ec["multi_scales"]),
                                            ("eval.scales", [float(v) for v in ec["scales"]] != [1.0]),
                                            ("eval.base_size", ec["base_size"] is not None)) if bad]
        problems += [f"{source_of(cfg, key)}: {key}: eval.window_rule 'factseg' is FactSeg's official streamed "
                     "protocol (one scale at the original size, no flip); use window_rule 'danet' for flip / "
                     "multi-scale" for key in unsupported]
    score = SEG_SCORES.get(ec["score"])
    if cfg["task"]["type"] == "segmentation" and score is not None and score.probabilities \
            and cfg["export"]["output"] == "logits":
        problems.append(f"{source_of(cfg, 'export.output')}: export.output: 'logits', but eval.score "
                        f"'{ec['score']}' gives class probabilities computed by the model (no logits to export); "
                        "use probability or label")
    return problems


def _signature_view(factory: Any) -> Any:
    """The dataset's signature with ``transform`` spelled ``transforms`` (the config key)."""
    sig = inspect.signature(factory)
    params = [p.replace(name="transforms") if p.name == "transform" else p for p in sig.parameters.values()]

    def view(*args: Any, **kwargs: Any) -> None:  # pragma: no cover - only its signature is read
        return None

    view.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return view


def load_run_config(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Load, validate and registry-check a run config (see module docstring)."""
    cfg = load_config(path, overrides)
    check_run_config(cfg)
    return cfg
