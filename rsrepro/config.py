"""Run configuration: YAML files with ``_base_`` inheritance, command-line overrides, up-front checks.

A run config is a YAML mapping with these sections (every key, its type and default is in ``SCHEMA``
below; ``python tools/train.py --print_schema`` prints them)::

    _base_: ../_base_/cityscapes.yml     # optional: str or list; paths relative to this file
    task: segmentation                   # or {type: segmentation, output_names: [fused, pam, cam]}
    model: {type: danet, backbone: resnet101, num_classes: 19, multi_grid: true, pretrained: null}
    loss: {type: danet_ce, weights: [1, 1, 1], ignore_index: 255}
    dataset:
      train: {type: cityscapes, root: data/cityscapes, split: train, transforms: [...]}
      val:   {type: cityscapes, root: data/cityscapes, split: val}
    train: {batch_size: 2, epochs: 240, log_interval: 10, save_interval: 1000, amp: {level: O1}, ...}
    optimizer: {type: momentum, momentum: 0.9, weight_decay: 1.0e-4, lr_mult: {"head.": 10.0}}
    lr_scheduler: {type: poly, base_lr: 0.003, power: 0.9, by: iter}
    eval: {mode: slide, base_size: 2048, crop_size: 768, flip: true, ...}
    export: {input_shape: [null, 3, null, null], output: logits}

``_base_`` files are merged first (in order), then this file: mappings merge key by key, anything
else (lists included) is replaced. Overrides ``key.sub=value`` (value parsed as YAML, list items
addressed by index: ``dataset.train.transforms.0.crop_size=64``) are applied last.

Validation happens before any work and reports EVERY problem at once, each naming the key, the file
(or override) it came from, what was expected and what was found: unknown keys (with a "did you
mean"), wrong types, values outside their choices, dataset folders/files that do not exist. Open
sections (model, loss and dataset keyword arguments) are checked against the signature of the
factory they go to by ``check_kwargs`` (called by the engine, which knows the registries).

YAML trap handled here: PyYAML (YAML 1.1) reads ``1e-4`` as the STRING '1e-4' (it needs a dot:
``1.0e-4``); this loader reads it as the float 0.0001.

Framework-free: no paddle / torch import.

Why a schema of our own rather than pydantic / OmegaConf (considered when the engine was reorganised):
every message here names the FILE or override a key came from (``_base_`` chains merge several files),
suggests the closest known key, and checks paths on disk and cross-field rules in the same single report;
pydantic reports a location tuple without the source file and no suggestion, so its errors would need a
translation layer of about the size of the validator below, plus a new pinned dependency.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, MutableMapping, Sequence, Tuple

import yaml

from .schedule_math import normalize_schedule

__all__ = [
    "ConfigError",
    "Field",
    "Section",
    "SCHEMA",
    "load_config",
    "load_yaml",
    "apply_overrides",
    "validate",
    "check_kwargs",
    "dump_config",
    "describe_schema",
    "get_path",
]


class ConfigError(ValueError):
    """A config problem; the message lists every problem found, each with its key and source."""


_MISSING = object()  # "absent, and no default is filled in"
REQUIRED = object()


# ----------------------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` / ``5E3`` (no dot) as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _parse_value(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (SafeLoader subclass)


def load_yaml(path: str) -> Dict[str, Any]:
    """Read one YAML file as a mapping; errors name the file (and line for syntax errors)."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_Loader)  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, found {type(data).__name__}")
    return data


def _leaf_paths(value: Any, prefix: str) -> List[str]:
    if isinstance(value, dict) and value:
        out: List[str] = []
        for key, sub in value.items():
            out += _leaf_paths(sub, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [prefix]


def _merge(base: Dict[str, Any], update: Mapping[str, Any], sources: Dict[str, str], source: str,
           prefix: str = "") -> Dict[str, Any]:
    for key, value in update.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, sources, source, path)
        else:
            for stale in [p for p in sources if p == path or p.startswith(path + ".")]:
                del sources[stale]
            base[key] = copy.deepcopy(value)
            for leaf in _leaf_paths(value, path):
                sources[leaf] = source
    return base


def _load_with_bases(path: str, sources: Dict[str, str], chain: Tuple[str, ...] = ()) -> Dict[str, Any]:
    real = os.path.realpath(path)
    if real in chain:
        raise ConfigError(f"{path}: _base_ cycle: {' -> '.join(chain + (real,))}")
    data = load_yaml(path)
    bases = data.pop("_base_", None)
    merged: Dict[str, Any] = {}
    if bases is not None:
        if isinstance(bases, str):
            bases = [bases]
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            raise ConfigError(f"{path}: _base_ must be a path or a list of paths, got {bases!r}")
        for base in bases:
            base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
            if not os.path.isfile(base_path):
                raise ConfigError(f"{path}: _base_ file not found: {base_path}")
            _merge(merged, _load_with_bases(base_path, sources, chain + (real,)), sources, base_path)
    return _merge(merged, data, sources, path)


def apply_overrides(cfg: Dict[str, Any], overrides: Sequence[str],
                    sources: Dict[str, str] | None = None) -> Dict[str, Any]:
    """Apply ``key.sub=value`` overrides in place (value parsed as YAML; ``key=null`` sets None).

    Intermediate mappings are created as needed; a numeric part indexes into a list. Unknown keys
    are not refused here — :func:`validate` reports them with the rest.
    """
    sources = sources if sources is not None else {}
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"override {text!r}: expected key.sub=value")
        dotted, raw = text.split("=", 1)
        parts = [p for p in dotted.strip().split(".")]
        if not dotted.strip() or any(not p for p in parts):
            raise ConfigError(f"override {text!r}: empty key part in {dotted!r}")
        try:
            value = _parse_value(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
        node: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                node = node[_list_index(node, part, where, text)]
            elif isinstance(node, dict):
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            else:
                raise ConfigError(f"override {text!r}: {where.rsplit('.', 1)[0]} is a "
                                  f"{type(node).__name__}, not a mapping")
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {text!r}: {where} is a {type(node).__name__} "
                                  f"({node!r}), not a mapping or list")
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, dotted, text)] = value
        else:
            node[last] = value
        for stale in [p for p in sources if p == dotted or p.startswith(dotted + ".")]:
            del sources[stale]
        for leaf in _leaf_paths(value, dotted):
            sources[leaf] = f"override {text!r}"
    return cfg


def _list_index(node: List[Any], part: str, where: str, text: str) -> int:
    if not re.fullmatch(r"-?\d+", part):
        raise ConfigError(f"override {text!r}: {where.rsplit('.', 1)[0]} is a list; "
                          f"expected an index, got {part!r}")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {text!r}: index {index} out of range (list of {len(node)})")
    return index


# -------------------------------------------------------------------------------------- schema
_KIND_TYPES = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Field:
    """One config value.

    Args:
        kind: "int", "float", "bool", "str", "list", "dict", "any", or a tuple of those.
        default: filled in when the key is absent; ``REQUIRED`` makes it mandatory; ``_MISSING``
            (the default) leaves it absent (the consumer has its own default).
        nullable: None is allowed.
        choices: allowed values.
        item: kind of every list item.
        minimum: smallest allowed number.
        path: "dir" / "file": the value is a path that must exist (relative to the current
            directory; "file_or_under_root": also looked up under the sibling ``root`` key).
        doc: one line for ``describe_schema``.
    """

    kind: str | Tuple[str, ...] = "any"
    default: Any = _MISSING
    nullable: bool = False
    choices: Tuple[Any, ...] | None = None
    item: str | None = None
    minimum: float | None = None
    path: str | None = None
    doc: str = ""


@dataclass
class Section:
    """A mapping of named fields / sub-sections.

    ``open``: keys not in ``fields`` pass through (checked later against a factory signature).
    ``nullable``: the whole section may be null (e.g. no validation dataset).
    ``shorthand``: a plain string is accepted and becomes ``{shorthand: value}``.
    ``check``: a cross-field check ``(values) -> list of (key, message)``.
    """

    fields: Dict[str, Field | Section]
    open: bool = False
    nullable: bool = False
    shorthand: str | None = None
    check: Callable[[Dict[str, Any]], List[Tuple[str, str]]] | None = None
    doc: str = ""


def _train_check(values: Dict[str, Any]) -> List[Tuple[str, str]]:
    has_iters, has_epochs = values.get("iters") is not None, values.get("epochs") is not None
    if has_iters == has_epochs:
        return [("iters", "give exactly one of train.iters and train.epochs "
                          f"(found {'both' if has_iters else 'neither'})")]
    amp = values.get("amp") or {}
    if values.get("to_static") and amp.get("level") not in (None, "O0"):
        return [("to_static", f"train.to_static is not supported together with AMP (amp.level "
                              f"{amp.get('level')!r}); use one of them")]
    if values.get("dtype") == "float64":
        if amp.get("level") not in (None, "O0"):
            return [("dtype", f"train.dtype float64 is not supported together with AMP (amp.level "
                              f"{amp.get('level')!r})")]
        if values.get("eval_at_end") or values.get("eval_interval"):
            return [("dtype", "train.dtype float64 trains for numerical verification only; the evaluators run "
                              "in float32: set train.eval_at_end false and train.eval_interval null")]
    return []


def _schedule_check(values: Dict[str, Any]) -> List[Tuple[str, str]]:
    try:
        normalize_schedule(values)
    except ValueError as exc:
        return [("", str(exc))]
    return []


DATASET = Section(
    {
        "type": Field("str", REQUIRED, doc="dataset name (engine dataset registry)"),
        "root": Field("str", REQUIRED, path="dir", doc="dataset root folder"),
        "list_file": Field("str", _MISSING, nullable=True, path="file_or_under_root",
                           doc="optional list file (as given, or relative to root)"),
        "transforms": Field(("list", "dict"), _MISSING, nullable=True,
                            doc="rsrepro.data.transforms.build_transforms config"),
    },
    open=True,
    doc="other keys: keyword arguments of the dataset class",
)

AMP = Section(
    {
        "level": Field("str", None, nullable=True, choices=("O0", "O1", "O2"),
                       doc="None/O0 = float32; O1 = auto_cast; O2 = pure fp16 weights (GPU only)"),
        "dtype": Field("str", "float16", choices=("float16", "bfloat16")),
        "custom_white_list": Field("list", [], item="str", doc="ops forced to low precision"),
        "custom_black_list": Field("list", [], item="str", doc="ops kept in float32"),
        "init_loss_scaling": Field("float", 65536.0, minimum=1.0),
        "use_dynamic_loss_scaling": Field("bool", True),
    },
    shorthand="level",
)

SCHEMA = Section(
    {
        "work_dir": Field("str", None, nullable=True, doc="output folder (tools: --work_dir)"),
        "task": Section(
            {
                "type": Field("str", "segmentation", choices=("segmentation", "change_detection")),
                "output_names": Field("list", None, nullable=True, item="str",
                                      doc="names of the model outputs / loss terms in logs"),
                "class_names": Field("list", None, nullable=True, item="str",
                                     doc="default: the train dataset's CLASS_NAMES"),
            },
            shorthand="type",
        ),
        "model": Section(
            {
                "type": Field("str", REQUIRED, doc="registered model name"),
                "pretrained": Field("str", None, nullable=True, path="file",
                                    doc="Paddle .pdparams or torch .pth weights to start from"),
                "pretrained_prefix": Field("str", "", doc="prefix added to checkpoint keys "
                                                          "(e.g. 'pretrained.' for a bare ResNet)"),
                "pretrained_strict": Field("bool", True, doc="every model key must be loaded"),
            },
            open=True,
            doc="other keys: keyword arguments of the model factory",
        ),
        "loss": Section({"type": Field("str", REQUIRED)}, open=True,
                        doc="other keys: keyword arguments of the loss factory"),
        "dataset": Section(
            {"train": Section(DATASET.fields, open=True, nullable=True),
             "val": Section(DATASET.fields, open=True, nullable=True)},
        ),
        "train": Section(
            {
                "batch_size": Field("int", REQUIRED, minimum=1, doc="samples per process"),
                "iters": Field("int", None, nullable=True, minimum=1),
                "epochs": Field("int", None, nullable=True, minimum=1),
                "num_workers": Field("int", 0, minimum=0),
                "seed": Field("int", 0, minimum=0),
                "shuffle": Field("bool", True),
                "drop_last": Field("bool", True),
                "log_interval": Field("int", 10, minimum=1),
                "eval_interval": Field("int", None, nullable=True, minimum=1,
                                       doc="iterations between evaluations (None: only at the end)"),
                "eval_at_end": Field("bool", True),
                "eval_max_samples": Field("int", None, nullable=True, minimum=1,
                                          doc="periodic evaluation on the first N val samples"),
                "save_interval": Field("int", 1000, minimum=0, doc="0: only the final checkpoint"),
                "keep_checkpoints": Field("int", 3, minimum=0, doc="0: keep all"),
                "final_checkpoint": Field("bool", True, doc="save a checkpoint when training ends (false: only the "
                                                            "periodic ones; an interrupted run still saves one)"),
                "best_metric": Field("str", None, nullable=True,
                                     doc="metric that selects the best model (task default)"),
                "sync_bn": Field("bool", True, doc="SyncBatchNorm in multi-GPU runs"),
                "find_unused_parameters": Field("bool", True,
                                                doc="DataParallel: DANet's ResNet fc gets no grad"),
                "amp": AMP,
                "nan_check": Field("bool", True, doc="stop on a NaN/Inf loss"),
                "to_static": Field("bool", False,
                                   doc="run forward + loss as a paddle.jit.to_static program (faster CPU steps "
                                       "for DASNet / FactSeg, see README Performance); single process, no AMP"),
                "plot": Field("bool", True, doc="write loss_curve.png at the end"),
                "dtype": Field("str", "float32", choices=("float32", "float64"),
                               doc="model, input and loss dtype; float64 is for numerical verification against "
                                   "the torch reference (alignment/check_convergence.py), without evaluation"),
            },
            check=_train_check,
        ),
        "optimizer": Section(
            {
                "type": Field("str", "momentum", choices=("momentum", "sgd", "adam", "adamw")),
                "momentum": Field("float"),
                "weight_decay": Field("float", minimum=0.0),
                "betas": Field("list", item="float"),
                "eps": Field("float"),
                "grad_clip_norm": Field("float", nullable=True, minimum=0.0),
                "lr_mult": Field("dict", doc="parameter-name prefix -> lr multiplier"),
                "nesterov": Field("bool"),
            },
        ),
        "lr_scheduler": Section({"type": Field("str", REQUIRED)}, open=True, check=_schedule_check,
                                doc="rsrepro.schedule_math schedule config"),
        "eval": Section(
            {
                "batch_size": Field("int", 1, minimum=1),
                "num_workers": Field("int", 0, minimum=0),
                "mode": Field("str", "whole", choices=("whole", "slide"),
                              doc="segmentation: whole image or sliding window"),
                "scales": Field("list", [1.0], item="float"),
                "multi_scales": Field("bool", False, doc="use ms_scales instead of scales"),
                "ms_scales": Field("list", [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.2], item="float"),
                "flip": Field("bool", False),
                "base_size": Field("int", None, nullable=True, minimum=1,
                                   doc="long side at scale 1 (None: the image's own)"),
                "crop_size": Field(("int", "list"), None, nullable=True, doc="window size"),
                "stride": Field(("int", "list"), None, nullable=True,
                                doc="window stride (None: DANet rule, crop*2/3 or crop/2)"),
                "window_rule": Field("str", "danet", choices=("danet", "factseg")),
                "pad_multiple": Field("int", None, nullable=True, minimum=1,
                                      doc="pad each window to a multiple (None: to the crop)"),
                "score": Field("str", "exp", doc="segmentation score (evaluator SEG_SCORES)"),
                "output_index": Field("int", 0),
                "fg_start": Field("int", None, nullable=True, minimum=0,
                                  doc="also report the mean IoU of classes fg_start.."),
                "thresholds": Field(("str", "list", "dict"), None, nullable=True,
                                    doc="change detection: dasnet_official | dasnet_v2 | list | "
                                        "{start, stop, num}"),
                "cd_score": Field("str", "softmax", doc="change score (evaluator CD_SCORES)"),
                "decision": Field("str", "threshold", choices=("threshold", "argmax")),
                "threshold": Field("float", None, nullable=True,
                                   doc="fixed threshold (None: the best of the sweep)"),
                "ignore_index": Field("int", 255, nullable=True),
            },
        ),
        "export": Section(
            {
                "input_shape": Field("list", [None, 3, None, None], doc="None = dynamic"),
                "output": Field("str", "logits", choices=("logits", "probability", "label")),
            },
        ),
    },
)


# ----------------------------------------------------------------------------------- validation
def _kind_ok(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if isinstance(value, bool) and kind in ("int", "float"):
        return False
    return isinstance(value, _KIND_TYPES[kind])


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


class _Report:
    def __init__(self, sources: Mapping[str, str], default_source: str) -> None:
        self.sources = sources
        self.default_source = default_source
        self.problems: List[str] = []

    def source(self, path: str) -> str:
        probe = path
        while probe:
            if probe in self.sources:
                return self.sources[probe]
            hits = [s for p, s in self.sources.items() if p.startswith(probe + ".")]
            if hits:
                return hits[0]
            probe = probe.rpartition(".")[0]
        return self.default_source

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{self.source(path)}: {path or '<top level>'}: {message}")


def _check_field(spec: Field, value: Any, path: str, report: _Report, siblings: Mapping[str, Any]) -> Any:
    if value is None:
        if not spec.nullable and spec.default is not None:
            report.add(path, "must not be null")
        return value
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    if not any(_kind_ok(value, k) for k in kinds):
        report.add(path, f"expected {' or '.join(kinds)}, got {_describe(value)}")
        return value
    if "float" in kinds and not any(_kind_ok(value, k) for k in kinds if k != "float"):
        value = float(value)
    if spec.choices is not None and value not in spec.choices:
        report.add(path, f"expected one of {list(spec.choices)}, got {value!r}")
    if spec.minimum is not None and isinstance(value, (int, float)) and value < spec.minimum:
        report.add(path, f"must be >= {spec.minimum}, got {value!r}")
    if spec.item is not None and isinstance(value, list):
        for index, element in enumerate(value):
            if not _kind_ok(element, spec.item):
                report.add(f"{path}.{index}", f"expected {spec.item}, got {_describe(element)}")
        if spec.item == "float":
            value = [float(v) if _kind_ok(v, "float") else v for v in value]
    if spec.path is not None and isinstance(value, str):
        _check_path(spec.path, value, path, report, siblings)
    return value


def _check_path(kind: str, value: str, path: str, report: _Report, siblings: Mapping[str, Any]) -> None:
    cwd = os.getcwd()
    if kind == "dir":
        if not os.path.isdir(value):
            what = "is a file, expected a folder" if os.path.isfile(value) else "folder not found"
            report.add(path, f"{what}: {value} (relative paths are taken from {cwd})")
    elif kind == "file":
        if not os.path.isfile(value):
            report.add(path, f"file not found: {value} (relative paths are taken from {cwd})")
    elif kind == "file_or_under_root":
        root = siblings.get("root")
        under = os.path.join(root, value) if isinstance(root, str) else None
        if not os.path.isfile(value) and not (under and os.path.isfile(under)):
            tried = value + (f" or {under}" if under else "")
            report.add(path, f"file not found: {tried}")


def _check_section(spec: Section, value: Any, path: str, report: _Report) -> Any:
    if value is None:
        if not spec.nullable:
            report.add(path, "must be a mapping, got null")
        return None
    if spec.shorthand is not None and isinstance(value, str):
        value = {spec.shorthand: value}
    if not isinstance(value, dict):
        report.add(path, f"expected a mapping, got {_describe(value)}")
        return value
    out: Dict[str, Any] = {}
    for key, sub in value.items():
        sub_path = f"{path}.{key}" if path else str(key)
        if not isinstance(key, str):
            report.add(sub_path, f"keys must be strings, got {_describe(key)}")
            continue
        if key not in spec.fields:
            if spec.open:
                out[key] = sub
                continue
            close = difflib.get_close_matches(key, list(spec.fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            report.add(sub_path, f"unknown key{hint} (known: {', '.join(sorted(spec.fields))})")
            continue
        child = spec.fields[key]
        if isinstance(child, Section):
            out[key] = _check_section(child, sub, sub_path, report)
        else:
            out[key] = _check_field(child, sub, sub_path, report, value)
    for key, child in spec.fields.items():
        if key in value:
            continue
        sub_path = f"{path}.{key}" if path else key
        if isinstance(child, Section):
            if child.nullable:
                out[key] = None
            else:
                out[key] = _check_section(child, {}, sub_path, report)
        elif child.default is REQUIRED:
            report.add(sub_path, f"required key is missing ({child.kind})")
        elif child.default is not _MISSING:
            out[key] = copy.deepcopy(child.default)
    if spec.check is not None:
        for key, message in spec.check(out):
            report.add(f"{path}.{key}" if key and path else (key or path), message)
    return out


def validate(cfg: Mapping[str, Any], schema: Section = SCHEMA, sources: Mapping[str, str] | None = None,
             source: str = "<config>") -> Dict[str, Any]:
    """Check ``cfg`` against ``schema``; return it with defaults filled. Raises ConfigError with
    every problem found (each line: source: key: message)."""
    report = _Report(sources or {}, source)
    out = _check_section(schema, dict(cfg), "", report)
    if report.problems:
        raise ConfigError(_format_problems(report.problems))
    return out


def _format_problems(problems: Sequence[str]) -> str:
    head = f"{len(problems)} config problem{'s' if len(problems) > 1 else ''}:"
    return head + "\n  " + "\n  ".join(problems)


def load_config(path: str, overrides: Sequence[str] = (), check: bool = True) -> Dict[str, Any]:
    """Load ``path`` (with its ``_base_`` chain), apply overrides and validate.

    The returned dict carries ``_sources`` (dotted key -> file or override it came from) and
    ``_config_path``; pass it to :func:`check_kwargs` / engine checks for messages that name the
    source. ``check=False`` skips validation (for inspecting a broken file).
    """
    sources: Dict[str, str] = {}
    cfg = _load_with_bases(path, sources)
    apply_overrides(cfg, overrides, sources)
    if check:
        cfg = validate(cfg, SCHEMA, sources, path)
    cfg["_sources"] = sources
    cfg["_config_path"] = path
    return cfg


def source_of(cfg: Mapping[str, Any], dotted: str) -> str:
    """The file (or override) a key came from, for error messages."""
    report = _Report(cfg.get("_sources", {}), cfg.get("_config_path", "<config>"))
    return report.source(dotted)


def check_kwargs(cfg: Mapping[str, Any], where: str, kwargs: Mapping[str, Any],
                 factory: Callable[..., Any], reserved: Sequence[str] = ()) -> List[str]:
    """Problems of ``kwargs`` (config section ``where``) against ``factory``'s signature.

    Unknown names are reported with the accepted ones; a value whose type does not fit the
    parameter's default (bool / int / float / str / sequence) is reported too. Returns the list of
    problem lines (empty when fine) so that callers can report several sections at once.
    """
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = [k for k, p in params.items()
                if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    problems: List[str] = []
    for key, value in kwargs.items():
        if key in reserved:
            continue
        dotted = f"{where}.{key}"
        if key not in params:
            if not takes_any:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                problems.append(f"{source_of(cfg, dotted)}: {dotted}: unknown argument{hint} "
                                f"(accepted: {', '.join(accepted)})")
            continue
        default = params[key].default
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        expected = _expected_from_default(default)
        if expected and not any(_kind_ok(value, k) for k in expected):
            problems.append(f"{source_of(cfg, dotted)}: {dotted}: expected {' or '.join(expected)} "
                            f"(like the default {default!r}), got {_describe(value)}")
    return problems


def _expected_from_default(default: Any) -> Tuple[str, ...]:
    if isinstance(default, bool):
        return ("bool",)
    if isinstance(default, int):
        return ("int",)
    if isinstance(default, float):
        return ("float",)
    if isinstance(default, str):
        return ("str",)
    if isinstance(default, (list, tuple)):
        return ("list",)
    return ()


def raise_problems(problems: Sequence[str]) -> None:
    if problems:
        raise ConfigError(_format_problems(problems))


def get_path(cfg: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def public(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The config without the bookkeeping keys (``_sources``, ``_config_path``)."""
    return {k: copy.deepcopy(v) for k, v in cfg.items() if not k.startswith("_")}


def dump_config(cfg: Mapping[str, Any]) -> str:
    """YAML text of the resolved config (what a run used), keys in schema order."""
    return yaml.safe_dump(public(cfg), sort_keys=False, default_flow_style=None, width=110)


def describe_schema(section: Section = SCHEMA, indent: int = 0) -> str:
    """Human-readable list of every key: kind, default, choices and doc."""
    lines: List[str] = []
    pad = "  " * indent
    for key, spec in section.fields.items():
        if isinstance(spec, Section):
            extra = " (open: more keys allowed)" if spec.open else ""
            doc = f"  # {spec.doc}" if spec.doc else ""
            lines.append(f"{pad}{key}:{extra}{doc}")
            lines.append(describe_schema(spec, indent + 1))
            continue
        kind = "|".join(spec.kind) if isinstance(spec.kind, tuple) else spec.kind
        if spec.default is REQUIRED:
            default = "required"
        elif spec.default is _MISSING:
            default = "optional"
        else:
            default = f"default {spec.default!r}"
        bits = [kind + ("|null" if spec.nullable else ""), default]
        if spec.choices:
            bits.append(f"one of {list(spec.choices)}")
        doc = f"  # {spec.doc}" if spec.doc else ""
        lines.append(f"{pad}{key}: {', '.join(bits)}{doc}")
    return "\n".join(lines)


def set_path(cfg: MutableMapping[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key, creating mappings on the way (used by the tools' convenience flags)."""
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value

