"""Optimizers and lr schedules from config dicts (torch twin of ``paddle_models/engine/optim.py``).

These are what the official training scripts do in PyTorch: ``SGD(momentum, weight_decay)`` with a
10x head group (DANet), ``Adam`` (DASNet), ``AdamW`` (LSNet), ``clip_grad_norm_`` between backward and
step (FactSeg), and the schedules as ``LambdaLR`` / ``StepLR`` / ``MultiStepLR``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch

from rsrepro.schedule_math import normalize_schedule

OPTIMIZER_KEYS = {"type", "momentum", "weight_decay", "betas", "eps", "grad_clip_norm", "lr_mult",
                  "nesterov"}


def param_groups(model: torch.nn.Module, lr_mult: Mapping[str, float] | None,
                 base_lr: float) -> List[Dict[str, Any]]:
    lr_mult = dict(lr_mult or {})
    groups: Dict[float, List[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        mult = next((float(m) for prefix, m in lr_mult.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(mult, []).append(param)
    return [{"params": params, "lr": base_lr * mult, "lr_mult": mult}
            for mult, params in sorted(groups.items())]


def _schedule_factor(cfg: Mapping[str, Any], total_steps: int):
    """lr / base_lr after ``t`` steps, written the way the official scripts compute it."""
    base = float(cfg["base_lr"])
    warmup = int(cfg["warmup_iters"])
    start = float(cfg["warmup_start_lr"])

    def factor(t: int) -> float:
        if t < warmup:
            return (start + (base - start) * t / warmup) / base
        t -= warmup
        if cfg["type"] == "poly":
            n = total_steps - warmup
            end = float(cfg["end_lr"])
            return ((base - end) * pow(1 - 1.0 * min(t, n) / n, float(cfg["power"])) + end) / base
        if cfg["type"] == "piecewise":
            for boundary, value in zip(cfg["boundaries"], cfg["values"]):
                if t < int(boundary):
                    return float(value) / base
            return float(cfg["values"][-1]) / base
        if cfg["type"] == "step":
            return float(cfg["gamma"]) ** (t // int(cfg["step_size"]))
        if cfg["type"] == "multistep":
            return float(cfg["gamma"]) ** sum(t >= int(m) for m in cfg["milestones"])
        return 1.0

    return factor


def build_scheduler(cfg: Mapping[str, Any], total_steps: int, optimizer: torch.optim.Optimizer):
    cfg = normalize_schedule(cfg)
    warmup = int(cfg["warmup_iters"])
    if warmup == 0 and cfg["type"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, int(cfg["step_size"]), float(cfg["gamma"]))
    if warmup == 0 and cfg["type"] == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, [int(m) for m in cfg["milestones"]], float(cfg["gamma"]))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule_factor(cfg, total_steps))


def build_optimizer(cfg: Mapping[str, Any], model: torch.nn.Module, base_lr: float) -> torch.optim.Optimizer:
    unknown = sorted(set(cfg) - OPTIMIZER_KEYS)
    if unknown:
        raise ValueError(f"optimizer: unknown key(s) {unknown}; allowed {sorted(OPTIMIZER_KEYS)}")
    kind = cfg.get("type", "momentum")
    wd = float(cfg.get("weight_decay", 0.0))
    params = param_groups(model, cfg.get("lr_mult"), base_lr)
    if kind in ("momentum", "sgd"):
        momentum = float(cfg.get("momentum", 0.9 if kind == "momentum" else 0.0))
        return torch.optim.SGD(params, lr=base_lr, momentum=momentum, weight_decay=wd,
                               nesterov=bool(cfg.get("nesterov", False)))
    betas = tuple(float(b) for b in cfg.get("betas", (0.9, 0.999)))
    eps = float(cfg.get("eps", 1e-8))
    if kind == "adam":
        return torch.optim.Adam(params, lr=base_lr, betas=betas, eps=eps, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=base_lr, betas=betas, eps=eps, weight_decay=wd)
    raise ValueError(f"optimizer.type: unknown optimizer '{kind}'; expected momentum, sgd, adam or adamw")


def clip_gradients(cfg: Mapping[str, Any], model: torch.nn.Module) -> None:
    if cfg.get("grad_clip_norm"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip_norm"]))
