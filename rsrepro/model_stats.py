"""Framework-free parameter and operation counting for ``tools/model_stats.py``.

The tool hooks every leaf module (torch forward hooks, Paddle forward post hooks), turns each call
into a :class:`LayerCall` (layer kind, input/output shapes, per-element kernel size) and this module
does all the arithmetic, so both frameworks are counted by the same rules.

What is counted (``COUNTING_RULES`` is written into the JSON next to the numbers):

- ``macs``: multiply-accumulates of convolutions (output elements x C_in/groups x k_h x k_w),
  transposed convolutions (input elements x C_out/groups x k_h x k_w) and linear layers (output
  elements x in_features). Bias additions, normalisation, activations, pooling, resizing,
  element-wise arithmetic, concatenation and any operation called as a function rather than
  through a module (e.g. ``torch.bmm`` in attention, functional ``interpolate``) are NOT counted.
  This is the quantity most papers call "FLOPs"; ``flops = 2 x macs`` is reported beside it.
- ``thop``: the rules of thop 0.0.31 (the counter LSNet's official code prints, ``from thop import
  profile``) as they apply to the module types here: conv = output elements x (C_in/groups x
  k_h x k_w + 1 if bias), linear = output elements x in_features, BatchNorm = 2 x elements,
  AvgPool = output elements, AdaptiveAvgPool = output elements x (kernel area + 1), bilinear
  Upsample = 11 x output elements; ReLU, PReLU, Sigmoid and unknown modules = 0, and modules
  without a rule (PReLU!) contribute no parameters either — hence the official README's
  "parameters" exclude the PReLU slopes.

Input specification ``NxCxHxW`` is the tensor the model sees. For a change-detection model
(``forward(t0, t1)``) N counts the images of both dates together, as the official LSNet counter
feeds its batch-concatenated (2, 3, 256, 256) tensor: ``2x3x256x256`` is ONE pair, given to the
model as t0 = t1 = 1x3x256x256. N must then be even.

``STATS_CONFIGS`` is the one table of what to count per registered model (kwargs and input);
add an entry when adding a model. A model without an entry is still counted, with
``DEFAULT_INPUT`` / ``DEFAULT_PAIR_INPUT`` and no kwargs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

Shape = Tuple[int, ...]

KINDS = ("conv", "conv_transpose", "linear", "norm", "prelu", "activation", "avgpool",
         "adaptive_avgpool", "maxpool", "upsample_bilinear", "upsample_nearest", "dropout", "other")

COUNTING_RULES = {
    "params": "trainable parameters (BatchNorm running statistics are buffers and not counted)",
    "params_without_prelu": "params minus PReLU slopes (what thop 0.0.31 reports: PReLU has no rule there)",
    "macs": "multiply-accumulates of conv, transposed conv and linear layers; bias adds, norms, "
            "activations, pooling, resizing, element-wise ops and functional ops (e.g. torch.bmm) "
            "not counted",
    "flops": "2 x macs",
    "thop": "thop 0.0.31 rules: conv out x (Cin/g x k + bias), linear out x in, BN 2 x elements, "
            "AvgPool out, AdaptiveAvgPool out x (area + 1), bilinear Upsample 11 x out, others 0",
    "aten_macs": "torch only: torch.utils.flop_counter.FlopCounterMode total / 2 (conv, mm, addmm, bmm, "
                 "... at the ATen level, so it also sees functional matmuls that module hooks miss)",
    "input": "NxCxHxW fed to the model; for change detection N counts both dates: 2x... = one pair",
}


@dataclass(frozen=True)
class StatsConfig:
    """One line of the stats table: which model, built how, fed what."""

    label: str
    model: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input: str = "1x3x512x512"
    pair: bool = False  # forward(t0, t1)
    # Figures the official release reports for this configuration (same keys as the rows), shown
    # beside the measured ones.
    reported: Mapping[str, float] = field(default_factory=dict)


DEFAULT_INPUT = "1x3x512x512"
DEFAULT_PAIR_INPUT = "2x3x256x256"

STATS_CONFIGS: Dict[str, List[StatsConfig]] = {
    "danet": [
        StatsConfig("danet_r50", "danet", {"backbone": "resnet50"}, "1x3x512x512"),
        StatsConfig("danet_r101_mg", "danet", {"backbone": "resnet101", "multi_grid": True}, "1x3x512x512"),
    ],
    # Reported: official README (qaz670756/LSNet), thop 0.0.31 on a (2, 3, 256, 256) batch = one pair.
    "lsnet": [
        StatsConfig(f"lsnet_{variant}", "lsnet", {"variant": variant}, "2x3x256x256", pair=True,
                    reported={"params_without_prelu": params, "thop": thop})
        for variant, params, thop in (("diffFPN", 1_207_706, 5.215e9), ("thin_diffFPN", 1_167_922, 4.778e9),
                                      ("denseFPN", 1_096_694, 5.865e9))
    ],
}


def configs_for(model: str, pair_hint: bool = False) -> List[StatsConfig]:
    """The table's configurations of ``model``, or one default configuration."""
    if model in STATS_CONFIGS:
        return list(STATS_CONFIGS[model])
    return [StatsConfig(model, model, {}, DEFAULT_PAIR_INPUT if pair_hint else DEFAULT_INPUT, pair_hint)]


def parse_input_spec(spec: str) -> Shape:
    """``"2x3x256x256"`` -> (2, 3, 256, 256)."""
    parts = spec.lower().replace("*", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input spec '{spec}': expected NxCxHxW with four positive integers, "
                         f"e.g. 2x3x256x256")
    return shape


def model_input_shapes(shape: Shape, pair: bool) -> List[Shape]:
    """Shapes of the tensors passed to ``forward``: one, or (t0, t1) splitting N between the dates."""
    if not pair:
        return [tuple(shape)]
    if shape[0] % 2:
        raise ValueError(f"input {'x'.join(map(str, shape))}: a change-detection model takes pairs, so N "
                         f"counts the images of both dates and must be even (2 = one pair)")
    half = (shape[0] // 2,) + tuple(shape[1:])
    return [half, half]


@dataclass(frozen=True)
class LayerCall:
    """One call of one leaf module, as seen by a forward hook.

    ``kernel_ops``: conv — C_in/groups x kernel area per output element; transposed conv — C_out/groups
    x kernel area per input element; linear — in_features per output element. ``thop_kernel_ops``:
    C_in/groups x kernel area for both conv kinds (thop's rule, also for transposed convs).
    """

    name: str
    kind: str
    in_shape: Shape
    out_shape: Shape
    kernel_ops: int = 0
    thop_kernel_ops: int = 0
    bias: bool = False


def numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape)) if shape else 0


def macs(call: LayerCall) -> int:
    if call.kind in ("conv", "linear"):
        return numel(call.out_shape) * call.kernel_ops
    if call.kind == "conv_transpose":
        return numel(call.in_shape) * call.kernel_ops
    return 0


def thop_ops(call: LayerCall) -> int:
    """Operations thop 0.0.31 attributes to this call."""
    out = numel(call.out_shape)
    if call.kind in ("conv", "conv_transpose"):
        return out * (call.thop_kernel_ops + int(call.bias))
    if call.kind == "linear":
        return out * call.kernel_ops
    if call.kind == "norm":
        return 2 * numel(call.in_shape)
    if call.kind == "avgpool":
        return out
    if call.kind == "adaptive_avgpool":
        area = numel(call.in_shape[2:]) // max(numel(call.out_shape[2:]), 1)
        return out * (area + 1)
    if call.kind == "upsample_bilinear":
        return 11 * out
    return 0


def summarize_calls(calls: Iterable[LayerCall]) -> Dict[str, Any]:
    """Totals over all calls: macs, flops, thop, and macs / thop per layer kind."""
    macs_by_kind: Dict[str, int] = {}
    thop_by_kind: Dict[str, int] = {}
    count = 0
    for call in calls:
        count += 1
        macs_by_kind[call.kind] = macs_by_kind.get(call.kind, 0) + macs(call)
        thop_by_kind[call.kind] = thop_by_kind.get(call.kind, 0) + thop_ops(call)
    total_macs = sum(macs_by_kind.values())
    return {
        "macs": total_macs,
        "flops": 2 * total_macs,
        "thop": sum(thop_by_kind.values()),
        "macs_by_kind": {k: v for k, v in sorted(macs_by_kind.items()) if v},
        "thop_by_kind": {k: v for k, v in sorted(thop_by_kind.items()) if v},
        "layer_calls": count,
    }


def summarize_params(entries: Iterable[Tuple[str, int, bool, bool]]) -> Dict[str, int]:
    """``entries``: (name, numel, trainable, is_prelu_slope) for every parameter of the model."""
    trainable = frozen = prelu = 0
    for _name, n, is_trainable, is_prelu in entries:
        if not is_trainable:
            frozen += n
            continue
        trainable += n
        prelu += n if is_prelu else 0
    return {"params": trainable, "params_without_prelu": trainable - prelu, "prelu_params": prelu,
            "non_trainable": frozen}


def _fmt_count(value: Any, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text table of ``rows`` (dicts as ``tools/model_stats.py`` builds them)."""
    header = ("config", "framework", "input", "params", "params w/o PReLU", "GMACs", "GFLOPs",
              "thop G", "aten GMACs")
    lines = [header]
    for r in rows:
        lines.append((r["label"], r["framework"], r["input"], f"{r['params']:,}",
                      f"{r['params_without_prelu']:,}", _fmt_count(r["macs"], 1e9, 3),
                      _fmt_count(r["flops"], 1e9, 3), _fmt_count(r["thop"], 1e9, 3),
                      _fmt_count(r.get("aten_macs"), 1e9, 3)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(line, widths))) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
