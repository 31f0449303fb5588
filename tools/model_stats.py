"""Parameters and FLOPs of every registered model, counted in both frameworks.

    python tools/model_stats.py                                   # every model, table defaults
    python tools/model_stats.py --model lsnet --variant denseFPN --input 2x3x256x256
    python tools/model_stats.py --model danet --set backbone=resnet101 --framework torch

Counts come from forward hooks on torch modules and forward post hooks on Paddle layers (leaf
modules only); the rules are in ``rsrepro/model_stats.py`` (``COUNTING_RULES``): ``params``
(trainable), ``params w/o PReLU``, ``GMACs`` = conv + linear multiply-accumulates, ``GFLOPs`` =
2 x GMACs, ``thop G`` = what thop 0.0.31 (the official LSNet counter) would print, and, torch only,
``aten GMACs`` from ``torch.utils.flop_counter`` as a cross-check that also sees functional
matmuls. ``--input NxCxHxW``: for a change-detection model N counts both dates, so 2x3x256x256 is
one 256x256 pair. The table goes to stdout, everything (with per-kind breakdowns) to ``--json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from typing import Any, Callable, Dict, List, Sequence

from rsrepro.model_stats import (
    COUNTING_RULES,
    STATS_CONFIGS,
    LayerCall,
    StatsConfig,
    configs_for,
    format_table,
    model_input_shapes,
    numel,
    parse_input_spec,
    summarize_calls,
    summarize_params,
)

FRAMEWORKS = ("torch", "paddle")


def is_pair_model(model: Any) -> bool:
    """True when ``forward`` takes two required tensors (t0, t1)."""
    params = inspect.signature(model.forward).parameters.values()
    required = [p for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 2


def _first_tensor(value: Any, tensor_type: type) -> Any:
    if isinstance(value, tensor_type):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], tensor_type):
        return value[0]
    return None


# ----------------------------------------------------------------------------------------- torch

def torch_kind(m: Any) -> str:
    from torch import nn

    if getattr(m, "stats_kind", None):
        return m.stats_kind
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        return "conv_transpose"
    if isinstance(m, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return "norm"
    if isinstance(m, nn.PReLU):
        return "prelu"
    if isinstance(m, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.GELU,
                      nn.SiLU, nn.Softmax)):
        return "activation"
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return "avgpool"
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        return "adaptive_avgpool"
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                      nn.AdaptiveMaxPool3d)):
        return "maxpool"
    if isinstance(m, nn.Upsample):
        return "upsample_bilinear" if m.mode == "bilinear" else f"upsample_{m.mode}"
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return "dropout"
    return "other"


def torch_layer_call(name: str, m: Any, inputs: Sequence[Any], output: Any) -> LayerCall:
    import torch

    x, y = _first_tensor(tuple(inputs), torch.Tensor), _first_tensor(output, torch.Tensor)
    kind = torch_kind(m)
    if x is None or y is None:
        return LayerCall(name, kind, (), ())
    kernel_ops = thop_kernel_ops = 0
    bias = getattr(m, "bias", None) is not None
    if kind in ("conv", "conv_transpose"):
        area = numel(m.weight.shape[2:])
        # torch weight: conv [out, in/g, k...], transposed [in, out/g, k...]
        kernel_ops = m.weight.shape[1] * area
        thop_kernel_ops = m.in_channels // m.groups * area
    elif kind == "linear":
        kernel_ops = m.in_features
    return LayerCall(name, kind, tuple(x.shape), tuple(y.shape), kernel_ops, thop_kernel_ops, bias)


def count_torch(config: StatsConfig, shape: Sequence[int], aten: bool = True) -> Dict[str, Any]:
    import torch
    from torch import nn

    import torch_ref

    model = torch_ref.build_model(config.model, **dict(config.kwargs)).eval()
    prelu_names = {f"{mn}.{pn}" if mn else pn for mn, mod in model.named_modules()
                   if isinstance(mod, nn.PReLU) for pn, _ in mod.named_parameters(recurse=False)}
    params = summarize_params((n, p.numel(), p.requires_grad, n in prelu_names)
                              for n, p in model.named_parameters())
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(s, generator=generator) * 255 for s in model_input_shapes(shape, config.pair)]
    calls: List[LayerCall] = []
    handles = [mod.register_forward_hook(_recorder(name, calls, torch_layer_call))
               for name, mod in model.named_modules() if next(mod.children(), None) is None]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    result = {**params, **summarize_calls(calls), "aten_macs": None}
    if aten:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
        result["aten_macs"] = counter.get_total_flops() // 2
    return result


# ---------------------------------------------------------------------------------------- paddle

def paddle_kind(layer: Any) -> str:
    from paddle import nn
    from paddle.nn.layer.norm import _BatchNormBase

    if getattr(layer, "stats_kind", None):
        return layer.stats_kind
    if isinstance(layer, (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)):
        return "conv_transpose"
    if isinstance(layer, (nn.Conv1D, nn.Conv2D, nn.Conv3D)):
        return "conv"
    if isinstance(layer, nn.Linear):
        return "linear"
    if isinstance(layer, (_BatchNormBase, nn.BatchNorm, nn.GroupNorm, nn.LayerNorm)):
        return "norm"
    if isinstance(layer, nn.PReLU):
        return "prelu"
    if isinstance(layer, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.GELU,
                          nn.Silu, nn.Softmax)):
        return "activation"
    if isinstance(layer, (nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)):
        return "avgpool"
    if isinstance(layer, (nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D)):
        return "adaptive_avgpool"
    if isinstance(layer, (nn.MaxPool1D, nn.MaxPool2D, nn.MaxPool3D, nn.AdaptiveMaxPool1D,
                          nn.AdaptiveMaxPool2D, nn.AdaptiveMaxPool3D)):
        return "maxpool"
    if isinstance(layer, nn.Upsample):
        return "upsample_bilinear" if layer.mode == "bilinear" else f"upsample_{layer.mode}"
    if isinstance(layer, (nn.Dropout, nn.Dropout2D, nn.Dropout3D)):
        return "dropout"
    return "other"


def paddle_layer_call(name: str, layer: Any, inputs: Sequence[Any], output: Any) -> LayerCall:
    import paddle

    x, y = _first_tensor(tuple(inputs), paddle.Tensor), _first_tensor(output, paddle.Tensor)
    kind = paddle_kind(layer)
    if x is None or y is None:
        return LayerCall(name, kind, (), ())
    kernel_ops = thop_kernel_ops = 0
    bias = getattr(layer, "bias", None) is not None
    if kind in ("conv", "conv_transpose"):
        w = layer.weight.shape
        area = numel(w[2:])
        # Paddle weight: conv [out, in/g, k...], transposed [in, out/g, k...] (as torch)
        kernel_ops = w[1] * area
        in_channels = w[0] if kind == "conv_transpose" else w[1] * layer._groups
        thop_kernel_ops = in_channels // layer._groups * area
    elif kind == "linear":
        kernel_ops = layer.weight.shape[0]  # Paddle Linear weight: [in, out]
    return LayerCall(name, kind, tuple(x.shape), tuple(y.shape), kernel_ops, thop_kernel_ops, bias)


def count_paddle(config: StatsConfig, shape: Sequence[int]) -> Dict[str, Any]:
    import numpy as np
    import paddle
    from paddle import nn

    import paddle_models

    model = paddle_models.build_model(config.model, **dict(config.kwargs))
    model.eval()
    prelu_names = {f"{ln}.{pn}" if ln else pn
                   for ln, layer in model.named_sublayers(include_self=True) if isinstance(layer, nn.PReLU)
                   for pn, _ in layer.named_parameters(include_sublayers=False)}
    params = summarize_params((n, int(np.prod(p.shape)), not p.stop_gradient, n in prelu_names)
                              for n, p in model.named_parameters())
    rng = np.random.RandomState(0)
    inputs = [paddle.to_tensor((rng.rand(*s) * 255).astype("float32"))
              for s in model_input_shapes(shape, config.pair)]
    calls: List[LayerCall] = []
    handles = [layer.register_forward_post_hook(_recorder(name, calls, paddle_layer_call))
               for name, layer in model.named_sublayers(include_self=True) if not layer.sublayers()]
    try:
        with paddle.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {**params, **summarize_calls(calls), "aten_macs": None}


def _recorder(name: str, calls: List[LayerCall], make: Callable[..., LayerCall]) -> Callable:
    def hook(module: Any, inputs: Any, output: Any) -> None:
        calls.append(make(name, module, inputs, output))

    return hook


# ------------------------------------------------------------------------------------------- CLI

def registered_models() -> Dict[str, List[str]]:
    """Model name -> the frameworks whose tree registers it."""
    import paddle_models
    import torch_ref

    names: Dict[str, List[str]] = {}
    for framework, package in (("torch", torch_ref), ("paddle", paddle_models)):
        for name in package.MODELS.names():
            names.setdefault(name, []).append(framework)
    return dict(sorted(names.items()))


def select_configs(model: str, variant: str | None, overrides: Dict[str, Any],
                   input_spec: str | None) -> List[StatsConfig]:
    if model in STATS_CONFIGS:
        configs = configs_for(model)
    else:  # no table entry: defaults, a pair input if forward takes (t0, t1)
        configs = configs_for(model, pair_hint=is_pair_model(_build_any(model)))
    if variant is not None:
        matching = [c for c in configs if c.kwargs.get("variant") == variant]
        base = configs[0]
        configs = matching or [StatsConfig(f"{model}_{variant}", model, {**base.kwargs, "variant": variant},
                                           base.input, base.pair)]
    if overrides:
        suffix = ",".join(f"{k}={v}" for k, v in overrides.items())
        configs = [StatsConfig(f"{c.label}[{suffix}]", c.model, {**c.kwargs, **overrides}, c.input, c.pair)
                   for c in configs]
    if input_spec is not None:
        parse_input_spec(input_spec)
        configs = [StatsConfig(c.label, c.model, c.kwargs, input_spec, c.pair,
                               c.reported if input_spec == c.input else {}) for c in configs]
    return configs


def _build_any(model: str) -> Any:
    import paddle_models
    import torch_ref

    package = torch_ref if model in torch_ref.MODELS.names() else paddle_models
    return package.build_model(model)


def collect(models: Sequence[str], frameworks: Sequence[str], variant: str | None = None,
            overrides: Dict[str, Any] | None = None, input_spec: str | None = None,
            aten: bool = True) -> List[Dict[str, Any]]:
    """One row per (configuration, framework)."""
    available = registered_models()
    rows = []
    for model in models:
        if model not in available:
            raise SystemExit(f"model_stats: unknown model '{model}'; registered: {', '.join(available)}")
        for config in select_configs(model, variant, overrides or {}, input_spec):
            shape = parse_input_spec(config.input)
            for framework in frameworks:
                if framework not in available[model]:
                    print(f"[model_stats] {model}: not registered in the {framework} tree, skipped",
                          file=sys.stderr)
                    continue
                if framework == "torch":
                    counts = count_torch(config, shape, aten)
                else:
                    counts = count_paddle(config, shape)
                rows.append({"label": config.label, "model": config.model, "kwargs": dict(config.kwargs),
                             "framework": framework, "input": config.input, "pair": config.pair,
                             "reported": dict(config.reported), **counts})
    return rows


def disagreements(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """Configurations whose torch and Paddle counts differ (they must not: same shapes, same rules)."""
    keys = ("params", "params_without_prelu", "macs", "thop")
    by_label: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for r in rows:
        by_label.setdefault(r["label"], {})[r["framework"]] = r
    problems = []
    for label, pair in by_label.items():
        if len(pair) == 2:
            diff = [k for k in keys if pair["torch"][k] != pair["paddle"][k]]
            if diff:
                problems.append(f"{label}: " + ", ".join(f"{k} torch {pair['torch'][k]:,} vs paddle "
                                                          f"{pair['paddle'][k]:,}" for k in diff))
    return problems


def reported_lines(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """Measured vs officially reported figures (first framework's row of each configuration)."""
    lines, seen = [], set()
    for r in rows:
        if r["label"] in seen or not r["reported"]:
            continue
        seen.add(r["label"])
        for key, value in r["reported"].items():
            scale, unit = (1e9, " G") if value >= 1e8 else (1, "")
            lines.append(f"{r['label']}: {key} measured {r[key] / scale:,.6f}{unit} "
                         f"({r['framework']}) vs reported {value / scale:,.6g}{unit}")
    return lines


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"model_stats: --set expects key=value, got '{item}'")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="registered model name (repeatable); default: all")
    parser.add_argument("--variant", help="value of the model's 'variant' argument (e.g. LSNet's denseFPN)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra model keyword argument (JSON value or string), repeatable")
    parser.add_argument("--input", help="NxCxHxW; change detection: N counts both dates (2 = one pair). "
                                        "Default: the model's entry in rsrepro/model_stats.py")
    parser.add_argument("--framework", choices=("both",) + FRAMEWORKS, default="both")
    parser.add_argument("--no-aten", action="store_true", help="skip the torch FlopCounterMode cross-check")
    parser.add_argument("--json", default=os.path.join("output", "model_stats.json"), help="JSON output path")
    args = parser.parse_args(argv)

    models = args.model or list(registered_models())
    frameworks = FRAMEWORKS if args.framework == "both" else (args.framework,)
    try:
        rows = collect(models, frameworks, args.variant, parse_overrides(args.set), args.input,
                       not args.no_aten)
    except ValueError as exc:
        raise SystemExit(f"model_stats: {exc}") from None
    print(format_table(rows))
    for line in reported_lines(rows):
        print(line)
    problems = disagreements(rows)
    for line in problems:
        print(f"MISMATCH between frameworks: {line}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"counting": COUNTING_RULES, "rows": rows}, f, indent=1)
    print(f"written {args.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
