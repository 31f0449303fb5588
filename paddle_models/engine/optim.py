"""Optimizers and lr schedules from config dicts (Paddle).

Optimizer config: ``{"type": "momentum"|"sgd"|"adam"|"adamw", "momentum": 0.9,
"weight_decay": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "grad_clip_norm": None,
"lr_mult": {"head.": 10.0}}``. ``lr_mult`` maps a parameter-name prefix to an lr multiplier (DANet's
head at 10x). Weight decay of momentum/sgd/adam is coupled L2 (torch ``SGD``/``Adam``
``weight_decay``); adamw is decoupled (torch ``AdamW``). Gradient clipping is by global norm
with torch's ``clip_grad_norm_`` formula (``TorchGlobalNormClip``), not per tensor.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

import paddle

from rsrepro.schedule_math import normalize_schedule

OPTIMIZER_KEYS = {"type", "momentum", "weight_decay", "betas", "eps", "grad_clip_norm", "lr_mult",
                  "nesterov"}


class TorchGlobalNormClip(paddle.nn.ClipGradByGlobalNorm):
    """Global-norm clipping with torch's formula: grads *= min(1, max_norm / (norm + 1e-6)).

    Paddle's ``ClipGradByGlobalNorm`` scales by ``max_norm / max(norm, max_norm)`` (no epsilon).
    Whenever clipping is active (FactSeg: norm ~200 vs max_norm 35 early in training) that moves
    every gradient by ~1e-6 relative per step against the official torch code; the float64
    alignment run of FactSeg's backward check exposed it. Clipping is skipped for parameters
    with ``need_clip = False``, as in Paddle.
    """

    @paddle.no_grad()
    def _dygraph_clip(self, params_grads):
        clipped = [(p, g) for p, g in params_grads if g is not None and getattr(p, "need_clip", True)]
        if not clipped:
            return params_grads
        total = paddle.stack([paddle.sum(paddle.square(g)) for _, g in clipped]).sum()
        coef = paddle.clip(self.clip_norm / (paddle.sqrt(total) + 1e-6), max=1.0)
        out = []
        for p, g in params_grads:
            if g is None or not getattr(p, "need_clip", True):
                out.append((p, g))
            else:
                out.append((p, g * coef.astype(g.dtype)))
        return out


def param_groups(model: paddle.nn.Layer, lr_mult: Mapping[str, float] | None) -> List[Dict[str, Any]]:
    """Split trainable parameters by name prefix; ``learning_rate`` is a MULTIPLIER in Paddle."""
    lr_mult = dict(lr_mult or {})
    groups: Dict[float, List[paddle.Tensor]] = {}
    for name, param in model.named_parameters():
        if param.stop_gradient:
            continue
        mult = next((float(m) for prefix, m in lr_mult.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(mult, []).append(param)
    return [{"params": params, "learning_rate": mult} for mult, params in sorted(groups.items())]


def build_scheduler(cfg: Mapping[str, Any], total_steps: int) -> paddle.optimizer.lr.LRScheduler:
    """Paddle scheduler equal to ``rsrepro.schedule_math.lr_at`` (proved by alignment/check_lr.py)."""
    cfg = normalize_schedule(cfg)
    base = float(cfg["base_lr"])
    warmup = int(cfg["warmup_iters"])
    kind = cfg["type"]
    lr_mod = paddle.optimizer.lr
    if kind == "poly":
        sched = lr_mod.PolynomialDecay(base, decay_steps=total_steps - warmup,
                                       end_lr=float(cfg["end_lr"]), power=float(cfg["power"]))
    elif kind == "step":
        sched = lr_mod.StepDecay(base, step_size=int(cfg["step_size"]), gamma=float(cfg["gamma"]))
    elif kind == "multistep":
        sched = lr_mod.MultiStepDecay(base, milestones=[int(m) for m in cfg["milestones"]],
                                      gamma=float(cfg["gamma"]))
    elif kind == "piecewise":
        sched = lr_mod.PiecewiseDecay(boundaries=[int(b) for b in cfg["boundaries"]],
                                      values=[float(v) for v in cfg["values"]])
    else:
        sched = lr_mod.LambdaDecay(base, lambda _: 1.0)
    if warmup > 0:
        sched = lr_mod.LinearWarmup(sched, warmup_steps=warmup,
                                    start_lr=float(cfg["warmup_start_lr"]), end_lr=base)
    sched.step_unit = cfg["by"]
    return sched


def build_optimizer(cfg: Mapping[str, Any], model: paddle.nn.Layer,
                    scheduler: paddle.optimizer.lr.LRScheduler | float) -> paddle.optimizer.Optimizer:
    unknown = sorted(set(cfg) - OPTIMIZER_KEYS)
    if unknown:
        raise ValueError(f"optimizer: unknown key(s) {unknown}; allowed {sorted(OPTIMIZER_KEYS)}")
    kind = cfg.get("type", "momentum")
    wd = float(cfg.get("weight_decay", 0.0))
    clip = cfg.get("grad_clip_norm")
    grad_clip = TorchGlobalNormClip(float(clip)) if clip else None
    params = param_groups(model, cfg.get("lr_mult"))
    common = {"learning_rate": scheduler, "parameters": params, "grad_clip": grad_clip}
    if kind in ("momentum", "sgd"):
        momentum = float(cfg.get("momentum", 0.9 if kind == "momentum" else 0.0))
        return paddle.optimizer.Momentum(momentum=momentum, weight_decay=wd or None,
                                         use_nesterov=bool(cfg.get("nesterov", False)), **common)
    betas = cfg.get("betas", (0.9, 0.999))
    eps = float(cfg.get("eps", 1e-8))
    if kind == "adam":
        return paddle.optimizer.Adam(beta1=float(betas[0]), beta2=float(betas[1]), epsilon=eps,
                                     weight_decay=wd or None, **common)
    if kind == "adamw":
        return paddle.optimizer.AdamW(beta1=float(betas[0]), beta2=float(betas[1]), epsilon=eps,
                                      weight_decay=wd, **common)
    raise ValueError(f"optimizer.type: unknown optimizer '{kind}'; expected momentum, sgd, adam or adamw")
