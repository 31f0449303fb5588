"""LSNet float32 rounding vs float64, torch vs Paddle (CPU, eval): output table, per-layer bisect, fixes.

How far each framework's float32 forward is from its float64 forward, and which layers / ops add the
error.

    python benchmarks/lsnet_rounding.py table  [--variants ...] [--seeds 0 1 2] [--size 64] [--batch 1]
    python benchmarks/lsnet_rounding.py bisect [--variants ...] [--seeds 0] [--top 25] [--json out.json]
    python benchmarks/lsnet_rounding.py ops    [--seeds 0]            # functional ops inside forward(), in isolation
    python benchmarks/lsnet_rounding.py candidates [--seeds 0 1 2 3 4] [--candidates model pool2d two_stage_mean ...]
    python benchmarks/lsnet_rounding.py pool   [--size 256] [--runs 15]   # the SE pool candidates alone: error, time
    python benchmarks/lsnet_rounding.py speed  [--size 256] [--runs 5] [--threads 1|2]   # whole-model dygraph forward

``--candidate`` / ``--candidates`` replace the global average pool of every CG block's SE gate in the
Paddle model (``POOLS``: "model" keeps the package's own (``GlobalAvgPool2D``, a two-stage mean since the
bisect singled this op out), "pool2d" Paddle's ``AdaptiveAvgPool2D(1)`` kernel (what the package used
before), mean over [2, 3], two-stage mean (W then H), float64 accumulation, pairwise).

Same weights in all four models: the torch reference is built with a fixed seed, its BatchNorm
affine / running statistics and PReLU slopes are randomised (``--init``), it is copied to float64
(BatchNorm eps rounded to float32, as Paddle stores it), and both are converted to Paddle with
``paddle_models.convert.convert_state_dict``. Inputs are uniform 0-255 pixel pairs (the official scripts
feed raw pixels). Paddle's float64 models resize with ``exact_float64_resize`` (its bilinear kernel
computes source coordinates in float32 even for float64), so both float64 runs agree to ~1e-14.

Distances are max|f32 - f64| / max|f64| ("max-rel") per output. The bisect hooks every sublayer
(torch ``register_forward_hook``, Paddle ``register_forward_post_hook``) and reports, per call:
  accumulated: the float32 model's output of that layer vs the float64 model's;
  local:       the float32 layer applied to the float64 run's input rounded to float32, vs the
               float64 layer applied to that same rounded input (the op's own rounding only).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import time
from collections import defaultdict
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

VARIANTS = ("diffFPN", "thin_diffFPN", "denseFPN")


# ----------------------------------------------------------------------------- models and inputs
def randomize_reference(model, seed: int, init: str) -> None:
    """Non-trivial BN statistics / affine and PReLU slopes (a fresh model has BN ~ identity)."""
    import torch

    if init == "none":
        return
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                if init == "harness":  # alignment.harness.randomize_reference
                    m.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=gen))
                    m.bias.copy_(0.05 * torch.randn(n, generator=gen))
                    m.running_mean.copy_(0.05 * torch.randn(n, generator=gen))
                    m.running_var.copy_(0.8 + 0.4 * torch.rand(n, generator=gen))
                else:  # "test": tests/test_lsnet.py randomize_reference (wider)
                    m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                    m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.2)
                    m.weight.copy_(1 + 0.3 * torch.randn(n, generator=gen))
                    m.bias.copy_(0.2 * torch.randn(n, generator=gen))
            elif isinstance(m, torch.nn.PReLU):
                if init == "harness":
                    m.weight.copy_(0.1 + 0.3 * torch.rand(m.weight.shape, generator=gen))
                else:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5)


@contextlib.contextmanager
def paddle_default_dtype(dtype: str):
    import paddle

    previous = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        yield
    finally:
        paddle.set_default_dtype(previous)


def build_models(variant: str, seed: int = 0, init: str = "harness", paddle_factory=None):
    """{"torch": {"float32": m, "float64": m}, "paddle": {...}} with identical weights, eval mode.

    ``paddle_factory(dtype)`` builds the Paddle model (default: ``paddle_models.build_model``) so that
    candidate variants of the model can be measured with the same weights.
    """
    import paddle
    import torch

    import paddle_models
    import torch_ref
    from paddle_models.convert import convert_state_dict

    torch.manual_seed(seed)
    paddle.seed(seed)
    np.random.seed(seed)
    t32 = torch_ref.build_model("lsnet", variant=variant)
    randomize_reference(t32, seed, init)
    t32.eval()
    t64 = copy.deepcopy(t32).double().eval()
    for m in t64.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eps = float(np.float32(m.eps))  # Paddle holds epsilon as a float32 attribute
    if paddle_factory is None:
        paddle_factory = lambda dtype: paddle_models.build_model("lsnet", variant=variant)  # noqa: E731
    models = {"torch": {"float32": t32, "float64": t64}, "paddle": {}}
    for dtype, ref in (("float32", t32), ("float64", t64)):
        with paddle_default_dtype(dtype):
            p = paddle_factory(dtype)
        p.set_state_dict(convert_state_dict(ref.state_dict(), p))
        p.eval()
        models["paddle"][dtype] = p
    return models


def make_inputs(batch: int, size: int, seed: int) -> List[np.ndarray]:
    rng = np.random.RandomState(seed)
    return [rng.uniform(0.0, 255.0, size=(batch, 3, size, size)) for _ in range(2)]


# ----------------------------------------------------------------------------- framework adapters
class TorchSide:
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def tensor(self, x: np.ndarray, dtype: str):
        return self.torch.from_numpy(np.ascontiguousarray(x.astype(dtype)))

    @staticmethod
    def numpy(t) -> np.ndarray:
        return t.detach().numpy().astype(np.float64)

    def is_tensor(self, t) -> bool:
        return isinstance(t, self.torch.Tensor)

    def context(self):
        return self.torch.no_grad()

    @staticmethod
    def layers(model):
        return [(name or "<model>", m) for name, m in model.named_modules()]

    @staticmethod
    def hook(layer, fn):
        return layer.register_forward_hook(lambda m, args, out: fn(args, out))

    @staticmethod
    def type_name(layer) -> str:
        return type(layer).__name__


class PaddleSide:
    name = "paddle"

    def __init__(self):
        import paddle

        self.paddle = paddle

    def tensor(self, x: np.ndarray, dtype: str):
        return self.paddle.to_tensor(x.astype(dtype))

    @staticmethod
    def numpy(t) -> np.ndarray:
        return t.numpy().astype(np.float64)

    def is_tensor(self, t) -> bool:
        return isinstance(t, self.paddle.Tensor)

    def context(self):
        from paddle_models.layers.resize import exact_float64_resize

        stack = contextlib.ExitStack()
        stack.enter_context(self.paddle.no_grad())
        stack.enter_context(exact_float64_resize(True))  # float64 only; float32 keeps the kernel
        return stack

    @staticmethod
    def layers(model):
        return [(name or "<model>", m) for name, m in model.named_sublayers(include_self=True)]

    @staticmethod
    def hook(layer, fn):
        return layer.register_forward_post_hook(lambda m, args, out: fn(args, out))

    @staticmethod
    def type_name(layer) -> str:
        return type(layer).__name__


SIDES: Dict[str, Callable] = {"torch": TorchSide, "paddle": PaddleSide}


def to_numpy_tree(side, value):
    if side.is_tensor(value):
        return side.numpy(value)
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy_tree(side, v) for v in value)
    return value


def to_tensor_tree(side, value, dtype: str):
    if isinstance(value, np.ndarray):
        return side.tensor(value, dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(to_tensor_tree(side, v, dtype) for v in value)
    return value


def flatten(value) -> List[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in flatten(v)]
    return []


def round32(value):
    if isinstance(value, np.ndarray):
        return value.astype(np.float32).astype(np.float64)
    if isinstance(value, (list, tuple)):
        return type(value)(round32(v) for v in value)
    return value


def max_rel(test: np.ndarray, ref: np.ndarray) -> float:
    scale = np.abs(ref).max()
    return float(np.abs(test - ref).max() / scale) if scale > 0 else float(np.abs(test - ref).max())


def mean_rel(test: np.ndarray, ref: np.ndarray) -> float:
    scale = np.abs(ref).mean()
    return float(np.abs(test - ref).mean() / scale) if scale > 0 else float(np.abs(test - ref).mean())


def rel_l2(test: np.ndarray, ref: np.ndarray) -> float:
    scale = np.linalg.norm(ref)
    return float(np.linalg.norm(test - ref) / scale) if scale > 0 else float(np.linalg.norm(test - ref))


def tree_err(test, ref, fn=max_rel) -> float:
    pairs = list(zip(flatten(test), flatten(ref)))
    return max(fn(t, r) for t, r in pairs) if pairs else float("nan")


def forward(side, model, inputs: Sequence[np.ndarray], dtype: str) -> List[np.ndarray]:
    with side.context():
        return flatten(to_numpy_tree(side, model(*[side.tensor(x, dtype) for x in inputs])))


# ----------------------------------------------------------------------------- Paddle candidates
def pool_adaptive(x):
    import paddle.nn.functional as F

    return F.adaptive_avg_pool2d(x, 1)


def pool_two_stage_mean(x):
    """Mean over W (contiguous, vectorised reduction), then over H: ~2-4x torch's rounding."""
    return x.mean(axis=3, keepdim=True).mean(axis=2, keepdim=True)


def pool_f64_mean(x):
    """Accumulate in float64, round once: correctly rounded, but casts the whole map."""
    return x.astype("float64").mean(axis=[2, 3], keepdim=True).astype(x.dtype)


def pool_pairwise(x):
    """Pairwise (tree) summation with log2(H*W) slice-and-add steps (static shapes only)."""
    import paddle

    b, c, h, w = x.shape
    y = x.reshape([b, c, h * w])
    n = h * w
    while n > 1:
        if n % 2:
            y = paddle.concat([y, paddle.zeros([b, c, 1], y.dtype)], 2)
            n += 1
        y = y[:, :, : n // 2] + y[:, :, n // 2 :]
        n //= 2
    return (y / (h * w)).reshape([b, c, 1, 1])


def pool_mean_hw(x):
    return x.mean(axis=[2, 3], keepdim=True)


def pool_model(x):
    from paddle_models.layers.context_guided import GlobalAvgPool2D

    return GlobalAvgPool2D()(x)


POOLS = {
    "model": pool_model,
    "pool2d": pool_adaptive,
    "mean_hw": pool_mean_hw,
    "two_stage_mean": pool_two_stage_mean,
    "f64_mean": pool_f64_mean,
    "pairwise": pool_pairwise,
}


def make_pool_layer(fn):
    """An AdaptiveAvgPool2D(1) (isinstance kept for tools/model_stats.py) computing ``fn``."""
    from paddle import nn

    class GlobalAvgPool2D(nn.AdaptiveAvgPool2D):
        def __init__(self):
            super().__init__(1)

        def forward(self, x):
            return fn(x)

    return GlobalAvgPool2D()


def paddle_factory(candidate: str, variant: str):
    """Builds the Paddle LSNet with the SE global pools of every CG block computed by POOLS[candidate]."""
    import paddle_models
    from paddle_models.layers.context_guided import GlobalContextExtractor

    def factory(dtype):
        model = paddle_models.build_model("lsnet", variant=variant)
        if candidate != "model":
            for layer in model.sublayers():
                if isinstance(layer, GlobalContextExtractor):
                    layer.avg_pool = make_pool_layer(POOLS[candidate])
        return model

    return factory


# ----------------------------------------------------------------------------- table
def output_table(variants, seeds, init, batch, size, candidate="model") -> List[Dict[str, Any]]:
    rows = []
    sides = {k: f() for k, f in SIDES.items()}
    for variant in variants:
        for seed in seeds:
            models = build_models(variant, seed, init, paddle_factory(candidate, variant))
            inputs = make_inputs(batch, size, seed)
            outs = {
                fw: {dt: forward(sides[fw], models[fw][dt], inputs, dt) for dt in ("float32", "float64")}
                for fw in sides
            }
            for i in range(len(outs["torch"]["float64"])):
                ref_t, ref_p = outs["torch"]["float64"][i], outs["paddle"]["float64"][i]
                rows.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "output": i,
                        "torch32": max_rel(outs["torch"]["float32"][i], ref_t),
                        "paddle32": max_rel(outs["paddle"]["float32"][i], ref_p),
                        "torch32_l2": rel_l2(outs["torch"]["float32"][i], ref_t),
                        "paddle32_l2": rel_l2(outs["paddle"]["float32"][i], ref_p),
                        "paddle32_vs_torch32": max_rel(outs["paddle"]["float32"][i], outs["torch"]["float32"][i]),
                        "paddle64_vs_torch64": max_rel(ref_p, ref_t),
                        "ideal": max_rel(round32(ref_t), ref_t),
                        "maxabs": float(np.abs(ref_t).max()),
                    }
                )
    return rows


def print_table(rows) -> None:
    print(
        f"{'variant':<13}{'seed':>5}{'out':>4}{'torch32':>11}{'paddle32':>11}{'p/t':>7}"
        f"{'p32-t32':>11}{'p64-t64':>10}{'max|ref|':>10}"
    )
    for r in rows:
        print(
            f"{r['variant']:<13}{r['seed']:>5}{r['output']:>4}{r['torch32']:>11.2e}{r['paddle32']:>11.2e}"
            f"{r['paddle32'] / r['torch32']:>7.2f}{r['paddle32_vs_torch32']:>11.2e}"
            f"{r['paddle64_vs_torch64']:>10.1e}{r['maxabs']:>10.3g}"
        )
    # summary: worst over seeds per (variant, output)
    print("\nworst over seeds (max-rel):")
    groups = defaultdict(list)
    for r in rows:
        groups[(r["variant"], r["output"])].append(r)
    for (variant, out), rs in groups.items():
        t = max(r["torch32"] for r in rs)
        p = max(r["paddle32"] for r in rs)
        gm = np.exp(np.mean([np.log(r["paddle32"] / r["torch32"]) for r in rs]))
        gl2 = np.exp(np.mean([np.log(r["paddle32_l2"] / r["torch32_l2"]) for r in rs]))
        print(
            f"  {variant:<13} out{out}: torch32 {t:.2e}  paddle32 {p:.2e}  "
            f"(geo-mean paddle/torch over seeds: max-rel {gm:.2f}, rel-L2 {gl2:.2f})"
        )


# ----------------------------------------------------------------------------- bisect
def category(side_name: str, layer) -> str:
    """A framework-neutral op category for a layer."""
    cls = type(layer).__name__
    if cls in ("Conv2d", "Conv2D"):
        if side_name == "torch":
            cin, groups, k, stride, dil = (
                layer.in_channels,
                layer.groups,
                layer.kernel_size[0],
                layer.stride[0],
                layer.dilation[0],
            )
        else:
            cin, groups, k, stride, dil = (
                layer._in_channels,
                layer._groups,
                layer._kernel_size[0],
                layer._stride[0],
                layer._dilation[0],
            )
        if groups > 1:
            return f"conv_depthwise3x3_d{dil}"
        if cin == 3:
            return "conv_first(3ch,0-255)"
        return f"conv{k}x{k}_s{stride}"
    return {
        "BatchNorm2d": "batch_norm",
        "BatchNorm2D": "batch_norm",
        "PReLU": "prelu",
        "Linear": "linear",
        "ReLU": "relu",
        "Sigmoid": "sigmoid",
        "AvgPool2d": "avg_pool3x3_s2",
        "AvgPool2D": "avg_pool3x3_s2",
        "AdaptiveAvgPool2d": "adaptive_avg_pool(global)",
        "AdaptiveAvgPool2D": "adaptive_avg_pool(global)",
        "ModuleList": "list",
        "LayerList": "list",
    }.get(cls, cls)


LEAF_CATEGORIES_SKIP = ("list",)


def record_calls(side, model, inputs, dtype, only: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """Every sublayer call of one forward (or of the layers whose names start with one of ``only``):
    name, category, inputs, output (numpy float64)."""
    calls: List[Dict[str, Any]] = []
    handles = []
    for name, layer in side.layers(model):
        if only and not any(name.startswith(p) for p in only):
            continue

        def fn(args, out, name=name, layer=layer):
            calls.append(
                {
                    "name": name,
                    "category": category(side.name, layer),
                    "inputs": to_numpy_tree(side, tuple(args)),
                    "output": to_numpy_tree(side, out),
                }
            )

        handles.append(side.hook(layer, fn))
    try:
        forward(side, model, inputs, dtype)
    finally:
        for h in handles:
            h.remove()
    return calls


def bisect_side(side, m32, m64, inputs, only: Sequence[str] = ()) -> List[Dict[str, Any]]:
    calls32 = record_calls(side, m32, inputs, "float32", only)
    calls64 = record_calls(side, m64, inputs, "float64", only)
    assert [c["name"] for c in calls32] == [c["name"] for c in calls64]
    layers32 = dict(side.layers(m32))
    layers64 = dict(side.layers(m64))
    rows = []
    with side.context():
        for c32, c64 in zip(calls32, calls64):
            name = c64["name"]
            x = round32(c64["inputs"])
            ref = flatten(to_numpy_tree(side, layers64[name](*to_tensor_tree(side, x, "float64"))))
            out = flatten(to_numpy_tree(side, layers32[name](*to_tensor_tree(side, x, "float32"))))
            rows.append(
                {
                    "name": name,
                    "category": c64["category"],
                    "accumulated": tree_err(c32["output"], c64["output"]),
                    "local": tree_err(out, ref),
                    "local_mean": tree_err(out, ref, mean_rel),
                    "ideal": tree_err(round32(ref), ref),
                    "in_maxabs": max((float(np.abs(a).max()) for a in flatten(x)), default=0.0),
                }
            )
    return rows


def run_bisect(variants, seeds, init, batch, size, candidate="model", only: Sequence[str] = ()) -> Dict[str, Any]:
    sides = {k: f() for k, f in SIDES.items()}
    per_call = []
    for variant in variants:
        for seed in seeds:
            models = build_models(variant, seed, init, paddle_factory(candidate, variant))
            inputs = make_inputs(batch, size, seed)
            res = {
                fw: bisect_side(sides[fw], models[fw]["float32"], models[fw]["float64"], inputs, only) for fw in sides
            }
            for rt, rp in zip(res["torch"], res["paddle"]):
                assert rt["name"] == rp["name"], (rt["name"], rp["name"])
                per_call.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "name": rt["name"],
                        "category": rt["category"],
                        "torch": rt,
                        "paddle": rp,
                    }
                )
    return {"calls": per_call}


def summarize_bisect(result, top: int) -> None:
    calls = [c for c in result["calls"] if c["category"] not in LEAF_CATEGORIES_SKIP]
    by_cat = defaultdict(list)
    for c in calls:
        by_cat[c["category"]].append(c)
    print(
        "local (op-own) error by category: median / max over calls of max-rel, and mean-rel median; "
        "ratio = paddle/torch of the medians"
    )
    print(
        f"{'category':<30}{'n':>5}{'torch med':>11}{'paddle med':>11}{'ratio':>7}{'torch max':>11}"
        f"{'paddle max':>11}{'t mean':>10}{'p mean':>10}{'ratio':>7}{'ideal':>10}"
    )
    lines = []
    for cat, cs in by_cat.items():
        tl = [c["torch"]["local"] for c in cs]
        pl = [c["paddle"]["local"] for c in cs]
        tm = [c["torch"]["local_mean"] for c in cs]
        pm = [c["paddle"]["local_mean"] for c in cs]
        ideal = statistics.median(c["torch"]["ideal"] for c in cs)
        lines.append(
            (
                statistics.median(pl) / max(statistics.median(tl), 1e-30),
                cat,
                len(cs),
                statistics.median(tl),
                statistics.median(pl),
                max(tl),
                max(pl),
                statistics.median(tm),
                statistics.median(pm),
                ideal,
            )
        )
    for ratio, cat, n, tmed, pmed, tmax, pmax, tmm, pmm, ideal in sorted(lines, reverse=True):
        print(
            f"{cat:<30}{n:>5}{tmed:>11.2e}{pmed:>11.2e}{ratio:>7.2f}{tmax:>11.2e}{pmax:>11.2e}"
            f"{tmm:>10.2e}{pmm:>10.2e}{pmm / max(tmm, 1e-30):>7.2f}{ideal:>10.1e}"
        )
    print(f"\ntop {top} calls by paddle local error minus torch local error:")
    ranked = sorted(calls, key=lambda c: c["paddle"]["local"] - c["torch"]["local"], reverse=True)
    for c in ranked[:top]:
        print(
            f"  {c['variant']:<12} s{c['seed']} {c['name']:<45} {c['category']:<26} "
            f"local t {c['torch']['local']:.2e} p {c['paddle']['local']:.2e}  "
            f"accum t {c['torch']['accumulated']:.2e} p {c['paddle']['accumulated']:.2e}  "
            f"|in| {c['torch']['in_maxabs']:.3g}"
        )


# ----------------------------------------------------------------------------- functional ops
def run_ops(seeds, size) -> None:
    """Functional ops of the forward() bodies that no hook sees, on realistic tensors, in isolation:
    the CoordAtt means, F.sigmoid, the SE gate multiply, the skip / top-down adds, h_swish, the
    bilinear x2 upsampling (align_corners=True)."""
    import paddle
    import paddle.nn.functional as PF
    import torch
    import torch.nn.functional as TF

    from paddle_models.layers import resize as presize

    def err(fn_t, fn_p, *arrays):
        a32 = [a.astype(np.float32) for a in arrays]
        r64_rounded = fn_t(*[torch.from_numpy(a.astype(np.float64)) for a in a32]).numpy()
        t = fn_t(*[torch.from_numpy(a) for a in a32]).numpy().astype(np.float64)
        p = fn_p(*[paddle.to_tensor(a) for a in a32]).numpy().astype(np.float64)
        return max_rel(t, r64_rounded), max_rel(p, r64_rounded), mean_rel(t, r64_rounded), mean_rel(p, r64_rounded)

    print(f"{'op':<44}{'torch max':>11}{'paddle max':>11}{'torch mean':>11}{'paddle mean':>12}")
    for seed in seeds:
        rng = np.random.RandomState(seed)
        x = np.abs(rng.randn(1, 128, size, size)) * 5 + rng.randn(1, 128, size, size)
        small = rng.randn(1, 64, size // 8, size // 8) * 30
        cases = [
            (
                "mean(axis=3) CoordAtt",
                lambda a: a.mean(dim=3, keepdim=True),
                lambda a: a.mean(axis=3, keepdim=True),
                (x,),
            ),
            (
                "mean(axis=2) CoordAtt",
                lambda a: a.mean(dim=2, keepdim=True),
                lambda a: a.mean(axis=2, keepdim=True),
                (x,),
            ),
            (
                "adaptive_avg_pool2d(1)",
                lambda a: TF.adaptive_avg_pool2d(a, 1),
                lambda a: PF.adaptive_avg_pool2d(a, 1),
                (x,),
            ),
            ("sigmoid", lambda a: a.sigmoid(), lambda a: PF.sigmoid(a), (rng.randn(1, 128, size, 1) * 4,)),
            (
                "hswish x*(relu6(x+3)/6)",
                lambda a: a * (TF.relu6(a + 3) / 6),
                lambda a: a * (PF.relu6(a + 3) / 6),
                (rng.randn(1, 8, 2 * size, 1) * 3,),
            ),
            (
                "up2x bilinear align_corners (8->16)",
                lambda a: TF.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True),
                lambda a: presize.bilinear(a, (2 * a.shape[2], 2 * a.shape[3])),
                (small,),
            ),
            (
                "up2x bilinear align_corners (32->64)",
                lambda a: TF.interpolate(a, scale_factor=2, mode="bilinear", align_corners=True),
                lambda a: presize.bilinear(a, (2 * a.shape[2], 2 * a.shape[3])),
                (rng.randn(1, 16, size // 2, size // 2) * 30,),
            ),
        ]
        for name, ft, fp, arrays in cases:
            tmax, pmax, tmean, pmean = err(ft, fp, *arrays)
            print(f"{name:<44}{tmax:>11.2e}{pmax:>11.2e}{tmean:>11.2e}{pmean:>12.2e}")


# ----------------------------------------------------------------------------- candidates / speed
def run_candidates(variants, seeds, init, batch, size, candidates) -> Dict[str, Any]:
    """Per candidate: float32 max-rel vs its own float64 run, worst over seeds, the geometric mean
    over seeds of paddle/torch, and the float64 semantics check (Paddle float64 vs torch float64)."""
    sides = {k: f() for k, f in SIDES.items()}
    res: Dict[Tuple[str, str, int], List[Tuple[float, float, float]]] = defaultdict(list)
    for variant in variants:
        for seed in seeds:
            inputs = make_inputs(batch, size, seed)
            torch_out = None
            for cand in candidates:
                models = build_models(variant, seed, init, paddle_factory(cand, variant))
                if torch_out is None:
                    torch_out = {
                        dt: forward(sides["torch"], models["torch"][dt], inputs, dt) for dt in ("float32", "float64")
                    }
                p32 = forward(sides["paddle"], models["paddle"]["float32"], inputs, "float32")
                p64 = forward(sides["paddle"], models["paddle"]["float64"], inputs, "float64")
                for i, ref in enumerate(torch_out["float64"]):
                    res[(cand, variant, i)].append(
                        (
                            max_rel(p32[i], p64[i]),
                            max_rel(p64[i], ref),
                            max_rel(torch_out["float32"][i], ref),
                            rel_l2(p32[i], p64[i]),
                            rel_l2(torch_out["float32"][i], ref),
                        )
                    )
    print(
        f"float32 max-rel vs float64 at {batch}x3x{size}x{size}, worst over seeds {list(seeds)} (init {init}); "
        f"gm: geometric mean over seeds of paddle/torch of max-rel; L2: same for rel-L2 (||d||/||ref||); "
        f"f64: max over outputs of paddle float64 vs torch float64"
    )
    outs = (0, 1, 2, 4)
    for variant in variants:
        print(f"\n{variant}\n  {'':<22}" + "".join(f"{'out' + str(i):>29}" for i in outs) + f"{'f64':>10}")
        print(
            f"  {'torch':<22}"
            + "".join(f"{max(r[2] for r in res[(candidates[0], variant, i)]):>12.2e}{'':>17}" for i in outs)
        )
        for cand in candidates:
            cells = ""
            for i in outs:
                rs = res[(cand, variant, i)]
                gm = float(np.exp(np.mean([np.log(r[0] / r[2]) for r in rs])))
                gl2 = float(np.exp(np.mean([np.log(r[3] / r[4]) for r in rs])))
                cells += f"{max(r[0] for r in rs):>12.2e} gm {gm:>4.2f} L2 {gl2:>4.2f}"
            f64 = max(r[1] for i in range(5) for r in res[(cand, variant, i)])
            print(f"  {'paddle ' + cand:<22}" + cells + f"{f64:>10.1e}")
    return {"|".join(map(str, k)): v for k, v in res.items()}


def run_speed(variants, size, runs, threads, candidates) -> Dict[str, Any]:
    """Dygraph float32 forward of the whole Paddle model (no_grad, eval), candidates interleaved."""
    import paddle

    rng = np.random.RandomState(0)
    xs = [paddle.to_tensor(rng.uniform(0, 255, (1, 3, size, size)).astype("float32")) for _ in range(2)]
    out: Dict[str, Any] = {}
    for variant in variants:
        models = {}
        for cand in candidates:
            paddle.seed(0)
            models[cand] = paddle_factory(cand, variant)("float32")
            models[cand].eval()
        times: Dict[str, List[float]] = {c: [] for c in candidates}
        with paddle.no_grad():
            for cand in candidates:
                models[cand](*xs)[-1].numpy()  # warm-up
            for _ in range(runs):
                for cand in candidates:
                    start = time.perf_counter()
                    models[cand](*xs)[-1].numpy()
                    times[cand].append(time.perf_counter() - start)
        base = statistics.median(times[candidates[0]])
        print(f"{variant} 1x3x{size}x{size}, {threads} thread(s), median of {runs} interleaved runs")
        for cand in candidates:
            med = statistics.median(times[cand])
            print(
                f"  {cand:<16}{med * 1e3:9.1f} ms {med / base:7.3f}x   runs "
                + " ".join(f"{t * 1e3:.0f}" for t in times[cand])
            )
        out[variant] = times
    return out


def run_pool(variant, size, runs, candidates) -> Dict[str, Any]:
    """The SE pool candidates alone on the exact inputs one forward feeds them: float32 error vs the
    float64 mean of the same float32 input (torch for comparison), and the summed op time."""
    import paddle
    import torch

    sides = {k: f() for k, f in SIDES.items()}
    model = paddle_factory("model", variant)("float32")
    model.eval()
    from paddle_models.layers.context_guided import GlobalContextExtractor

    captured: List[np.ndarray] = []
    for layer in model.sublayers():
        if isinstance(layer, GlobalContextExtractor):
            layer.register_forward_post_hook(lambda m, i, o: captured.append(i[0].numpy()))
    forward(sides["paddle"], model, make_inputs(1, size, 0), "float32")
    tensors = [paddle.to_tensor(a) for a in captured]
    refs = [a.astype(np.float64).mean(axis=(2, 3), keepdims=True) for a in captured]
    torch_err = max(
        max_rel(torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(a), 1).numpy().astype(np.float64), r)
        for a, r in zip(captured, refs)
    )
    errs = {
        c: max(max_rel(POOLS[c](t).numpy().astype(np.float64), r) for t, r in zip(tensors, refs)) for c in candidates
    }
    f64 = {
        c: max(max_rel(POOLS[c](paddle.to_tensor(a.astype(np.float64))).numpy(), r) for a, r in zip(captured, refs))
        for c in candidates
    }
    times: Dict[str, List[float]] = {c: [] for c in candidates}
    with paddle.no_grad():
        for _ in range(runs):
            for c in candidates:
                start = time.perf_counter()
                for t in tensors:
                    POOLS[c](t).numpy()
                times[c].append(time.perf_counter() - start)
    elems = sum(a.size for a in captured)
    print(
        f"{variant} 1x3x{size}x{size}: {len(captured)} SE pools, {elems / 1e6:.1f} M elements; "
        f"worst max-rel over the pools (torch adaptive_avg_pool2d(1): {torch_err:.2e})"
    )
    base = statistics.median(times[candidates[0]])
    for c in candidates:
        med = statistics.median(times[c])
        print(
            f"  {c:<16} float32 {errs[c]:.2e}  float64 vs exact {f64[c]:.1e}  time {med * 1e3:7.2f} ms "
            f"({med / base:4.2f}x, {(med - base) * 1e3:+7.2f} ms per forward)"
        )
    return {"torch": torch_err, "errors": errs, "float64": f64, "times": times}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["table", "bisect", "ops", "candidates", "speed", "pool"])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--init", choices=["harness", "test", "none"], default="harness")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=None, help="input H = W (default 64; speed, pool: 256)")
    parser.add_argument("--runs", type=int, default=5, help="speed / pool: timed runs (median)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", default="")
    parser.add_argument(
        "--only", nargs="*", default=[], help="bisect: hook only layers whose names start with one of these (e.g. head)"
    )
    parser.add_argument(
        "--candidate",
        choices=list(POOLS),
        default="model",
        help="table, bisect: how Paddle's CG blocks compute their SE global average pool",
    )
    parser.add_argument(
        "--candidates",
        nargs="*",
        choices=list(POOLS),
        default=["model", "pool2d", "two_stage_mean", "f64_mean", "pairwise"],
        help="candidates, speed, pool: the SE pool variants to compare (first = baseline)",
    )
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 256 if args.mode in ("speed", "pool") else 64

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before the frameworks start their thread pools
    import torch

    torch.set_num_threads(args.threads)
    import paddle

    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.threads)

    if args.mode == "table":
        rows = output_table(args.variants, args.seeds, args.init, args.batch, args.size, args.candidate)
        print_table(rows)
        result: Any = rows
    elif args.mode == "bisect":
        result = run_bisect(args.variants, args.seeds, args.init, args.batch, args.size, args.candidate, args.only)
        summarize_bisect(result, args.top)
    elif args.mode == "candidates":
        result = run_candidates(args.variants, args.seeds, args.init, args.batch, args.size, args.candidates)
    elif args.mode == "speed":
        result = run_speed(args.variants, args.size, args.runs, args.threads, args.candidates)
    elif args.mode == "pool":
        result = {v: run_pool(v, args.size, args.runs, args.candidates) for v in args.variants}
    else:
        run_ops(args.seeds, args.size)
        result = None
    if args.json and result is not None:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
