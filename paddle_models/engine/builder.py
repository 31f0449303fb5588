"""Config -> objects: the run config checks that need the registries, and the builders.

``load_run_config(path, overrides)`` is the one entry point of every tool: it loads and validates the
YAML (``common.config``), then checks what only the registries know — model / loss / dataset keyword
arguments against their factories' signatures, transform configs, the task name, the optimizer and
schedule sections, ``num_classes`` against the dataset — and raises ONE ``ConfigError`` listing every
problem (each naming its key and the file or override it came from) before any data is read or any
model is built.

Datasets are looked up in ``DATASETS`` (name -> class). A new dataset (e.g. CDD for the
change-detection models) is one ``DATASETS.register("cdd")(CDDDataset)`` line here. A dataset class
takes its keyword arguments from the config section (``transforms`` is passed as ``transform``),
returns numpy arrays from ``__getitem__`` (segmentation: image, label; change detection: t0, t1,
label), and may offer ``set_epoch`` / a ``seed`` argument (exactly reproducible augmentation),
``NUM_CLASSES``, ``CLASS_NAMES``, ``PALETTE`` and ``IGNORE_INDEX``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import paddle

import paddle_models
from common.config import ConfigError, check_kwargs, load_config, raise_problems, source_of
from common.registry import Registry
from data import CityscapesDataset, DatasetError, TransformConfigError, build_transforms
from data.cdd import CDDDataset, LEVIRCDDataset
from data.isaid import ISAIDDataset, NormalizePixels, factseg_val_transforms
from data.transforms import IMAGENET_MEAN, IMAGENET_STD, Compose, Normalize

from .optim import OPTIMIZER_KEYS

__all__ = [
    "DATASETS",
    "load_run_config",
    "check_run_config",
    "build_dataset",
    "build_model",
    "build_loss",
    "load_weights",
    "normalization_of",
    "normalization_spec",
    "unwrap_model",
]

DATASETS = Registry("dataset")
DATASETS.register("cityscapes")(CityscapesDataset)
DATASETS.register("cdd")(CDDDataset)
DATASETS.register("levir")(LEVIRCDDataset)
DATASETS.register("isaid")(ISAIDDataset)

MODEL_RESERVED = ("type", "pretrained", "pretrained_prefix", "pretrained_strict")


def _dataset_kwargs(section: Mapping[str, Any]) -> Dict[str, Any]:
    kwargs = {k: v for k, v in section.items() if k != "type"}
    if "transforms" in kwargs:
        transforms = kwargs.pop("transforms")
        if transforms is not None:
            kwargs["transform"] = transforms
    return kwargs


def check_run_config(cfg: Mapping[str, Any]) -> None:
    """Registry-level checks of a validated config; raises ConfigError listing every problem."""
    from .tasks import TASKS

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
        kwargs = _dataset_kwargs(section)
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
    from .evaluator import CD_SCORES, SEG_SCORES, resolve_thresholds

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
    import inspect

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


def build_dataset(cfg: Mapping[str, Any], split: str, seed: int | None = None):
    """The ``dataset.<split>`` of the config. ``seed`` is passed when the dataset takes one and
    the config does not set it (reproducible per-sample augmentation)."""
    import inspect

    section = cfg["dataset"].get(split)
    if section is None:
        raise ConfigError(f"{cfg.get('_config_path', '<config>')}: dataset.{split} is not configured")
    factory = DATASETS.get(section["type"])
    kwargs = _dataset_kwargs(section)
    if seed is not None and "seed" in inspect.signature(factory).parameters and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        return factory(**kwargs)
    except DatasetError as exc:
        raise DatasetError(f"dataset.{split} ({source_of(cfg, 'dataset.' + split)}): {exc}") from None


# Validation transform a dataset CLASS builds when none is configured (for callers that have the class
# but no instance, e.g. tools/export.py writing deploy.yml without reading any data).
DEFAULT_VAL_TRANSFORMS: Dict[type, Any] = {ISAIDDataset: factseg_val_transforms}


def normalization_spec(dataset: Any = None, transforms: Any = None) -> Dict[str, Any]:
    """``{"mean", "std", "scale"}`` such that the model input is ``(x / scale - mean) / std`` of uint8 x.

    Read from ``transforms`` (a transform config or callable) when given, else from the dataset's
    ``transform`` (an instance), else from ``DEFAULT_VAL_TRANSFORMS`` of the dataset class; the first
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
        cls = dataset if isinstance(dataset, type) else type(dataset)
        factory = next((f for c, f in DEFAULT_VAL_TRANSFORMS.items() if issubclass(cls, c)), None)
        transform = factory() if factory is not None else None
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    for step in steps:
        if isinstance(step, (Normalize, NormalizePixels)):
            # the steps hold float32: the shortest decimal that gives back the same float32 (123.675)
            return {"mean": [float(str(np.float32(v))) for v in step.mean],
                    "std": [float(str(np.float32(v))) for v in step.std],
                    "scale": 255.0 if isinstance(step, Normalize) else 1.0}
    return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "scale": 255.0}


def normalization_of(dataset: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on the 0-1 pixel scale (``x / 255``) of the dataset's normalisation
    (:func:`normalization_spec`; a 0-255 ``NormalizePixels`` is divided by 255).

    The evaluator pads with the value that is black after normalisation, ``-mean / std``, as the
    official DANet ``pad_image`` (scale-free).
    """
    spec = normalization_spec(dataset)
    divisor = 255.0 / spec["scale"]
    return tuple(m / divisor for m in spec["mean"]), tuple(s / divisor for s in spec["std"])


def build_model(cfg: Mapping[str, Any]) -> paddle.nn.Layer:
    """The configured model; ``model.pretrained`` weights are loaded when given."""
    model_cfg = cfg["model"]
    kwargs = {k: v for k, v in model_cfg.items() if k not in MODEL_RESERVED}
    model = paddle_models.build_model(model_cfg["type"], **kwargs)
    if model_cfg.get("pretrained"):
        load_weights(model, model_cfg["pretrained"], prefix=model_cfg.get("pretrained_prefix", ""),
                     strict=model_cfg.get("pretrained_strict", True))
    return model


def build_loss(cfg: Mapping[str, Any]):
    loss_cfg = cfg["loss"]
    return paddle_models.build_loss(loss_cfg["type"], **{k: v for k, v in loss_cfg.items() if k != "type"})


def unwrap_model(model: paddle.nn.Layer) -> paddle.nn.Layer:
    """The bare model inside ``paddle.DataParallel``."""
    return model._layers if isinstance(model, paddle.DataParallel) else model


def _read_state(path: str) -> Dict[str, Any]:
    """The file's state dict (``{"__torch__": ...}`` for a torch file); pickles are trusted only inside
    ``common.safe_load.trusted_pickle`` (see load_weights)."""
    from common.safe_load import UntrustedPickleError, pickle_trusted

    from .checkpoint import WeightsError, read_paddle_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.endswith((".pth", ".pt", ".pth.tar", ".tar")):
        from alignment.convert import load_torch_checkpoint

        return {"__torch__": load_torch_checkpoint(path, trust_pickle=pickle_trusted())}
    try:
        state = read_paddle_file(path)
    except UntrustedPickleError:
        raise
    except Exception as exc:  # a damaged file fails in pickle or numpy with many exception types
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise WeightsError(f"{path}: can not parse the file as weights written by paddle.save (truncated, or "
                           f"another format?): {type(exc).__name__}: {first}") from None
    if isinstance(state, dict) and "model" in state and "format" in state:  # a training checkpoint
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def load_weights(model: paddle.nn.Layer, path: str, prefix: str = "", strict: bool = True,
                 trust_pickle: bool | None = None) -> Dict[str, Any]:
    """Load Paddle weights (``.pdparams``, or a training ``.pdckpt``) or an official torch checkpoint
    (``.pth`` / ``.pth.tar``, converted by ``alignment.convert``) into ``model``.

    ``prefix`` is prepended to every checkpoint key (``pretrained.`` loads a bare ResNet into DANet's
    backbone). With ``strict`` every model key must be present; unexpected or mis-shaped keys always
    raise. A full checkpoint loads into an attention ablation (a DANet head whose PAM / CAM is an
    identity, the DASNet-V2 "without PAM / CAM" configs): exactly the keys
    ``common.dasnet.ablation_dropped_keys`` names are dropped and logged; any other misfit still
    raises. Returns ``{"loaded": n, "missing": [...], "dropped": [...]}``.

    Paddle files are unpickled without running code from them (``common.safe_load``): a file naming
    any other global raises ``UntrustedPickleError`` unless ``trust_pickle=True`` (``None``: trusted
    only inside ``common.safe_load.trusted_pickle()``, what the tools' ``--trust-pickle`` sets). A file
    that cannot be read or does not fit raises ``WeightsError`` (a CheckpointError and a ValueError)
    listing the missing, unexpected and mis-shaped keys separately.
    """
    from common.safe_load import trusted_pickle

    from .checkpoint import WeightsError

    with trusted_pickle(trust_pickle):
        state = _read_state(path)
    target = unwrap_model(model)
    if "__torch__" in state:
        from alignment.convert import convert_state_dict

        torch_state = {prefix + k: v for k, v in state["__torch__"].items()}
        dropped = _ablation_dropped(target, torch_state, path)
        arrays = convert_state_dict({k: v for k, v in torch_state.items() if k not in dropped}, target,
                                    strict=strict)
    else:
        own = target.state_dict()
        arrays, unexpected, mismatched, misshaped = {}, [], [], set()
        dropped = _ablation_dropped(target, {prefix + k: v for k, v in state.items()}, path)
        for key, value in state.items():
            name = prefix + key
            if name in dropped:
                continue
            if name not in own:
                unexpected.append(key)
                continue
            value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
            if list(value.shape) != list(own[name].shape):
                mismatched.append(f"{key}: file {list(value.shape)} vs model {list(own[name].shape)}")
                misshaped.add(name)
                continue
            arrays[name] = value
        missing = [k for k in own if k not in arrays and k not in misshaped]  # each misfit listed once
        if unexpected or mismatched or (strict and missing):
            parts = [f"{path} does not fit the model:"]
            for title, keys in (("missing", missing if strict else []), ("unexpected", unexpected),
                                ("shape mismatch", mismatched)):
                if keys:
                    parts.append(f"  {title} ({len(keys)}): {', '.join(keys[:10])}"
                                 + (" ..." if len(keys) > 10 else ""))
            raise WeightsError("\n".join(parts))
    target.set_state_dict(arrays)
    return {"loaded": len(arrays), "missing": [k for k in target.state_dict() if k not in arrays],
            "dropped": sorted(dropped)}


def _ablation_dropped(model: paddle.nn.Layer, state: Mapping[str, Any], path: str) -> set[str]:
    """Checkpoint keys that the model's attention ablation removed (``common.dasnet.ablation_dropped_keys``
    for every DANet head whose PAM / CAM is an identity), logged when any are found."""
    import logging

    from common.dasnet import ablation_dropped_keys
    from paddle_models.danet import DANetHead

    dropped: List[str] = []
    for name, layer in model.named_sublayers():
        if isinstance(layer, DANetHead):
            use_pam = not isinstance(layer.sa, paddle.nn.Identity)
            use_cam = not isinstance(layer.sc, paddle.nn.Identity)
            if not (use_pam and use_cam):
                dropped += ablation_dropped_keys(state, use_pam, use_cam, head_prefix=name + ".")
    if dropped:
        logging.getLogger("paddle_rs.weights").warning(
            f"{path}: dropped {len(dropped)} key(s) of the attention modules this ablated model does not "
            f"have: {', '.join(sorted(dropped))}")
    return set(dropped)
