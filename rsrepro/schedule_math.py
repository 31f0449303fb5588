"""Learning-rate schedule definitions shared by both trees (plain Python, no framework).

A schedule config is a dict, e.g. ``{"type": "poly", "base_lr": 0.003, "power": 0.9,
"end_lr": 0.0, "warmup_iters": 0, "warmup_start_lr": 0.0, "by": "iter"}``. ``by`` says whether the
trainer steps the scheduler once per iteration or once per epoch; steps and milestones are
counted in that unit. This module validates the config and gives the closed-form lr of step ``t``
that both frameworks' schedulers must reproduce (``alignment/check_lr.py`` compares all three).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

SCHEDULE_KEYS = {
    "poly": {"base_lr", "power", "end_lr", "warmup_iters", "warmup_start_lr", "by"},
    "step": {"base_lr", "step_size", "gamma", "warmup_iters", "warmup_start_lr", "by"},
    "multistep": {"base_lr", "milestones", "gamma", "warmup_iters", "warmup_start_lr", "by"},
    "piecewise": {"base_lr", "boundaries", "values", "warmup_iters", "warmup_start_lr", "by"},
    "constant": {"base_lr", "warmup_iters", "warmup_start_lr", "by"},
}
DEFAULTS = {"power": 0.9, "end_lr": 0.0, "warmup_iters": 0, "warmup_start_lr": 0.0, "by": "iter",
            "gamma": 0.1}


def normalize_schedule(cfg: Mapping[str, Any], where: str = "lr_scheduler") -> Dict[str, Any]:
    """Validate a schedule config and fill defaults; errors name the offending key."""
    if "type" not in cfg:
        raise ValueError(f"{where}: missing 'type' (one of {sorted(SCHEDULE_KEYS)})")
    kind = cfg["type"]
    if kind not in SCHEDULE_KEYS:
        raise ValueError(f"{where}.type: unknown schedule '{kind}', expected one of {sorted(SCHEDULE_KEYS)}")
    allowed = SCHEDULE_KEYS[kind]
    unknown = sorted(set(cfg) - allowed - {"type"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for type '{kind}'; allowed {sorted(allowed)}")
    out: Dict[str, Any] = {"type": kind}
    for key in sorted(allowed):
        if key in cfg:
            out[key] = cfg[key]
        elif key in DEFAULTS:
            out[key] = DEFAULTS[key]
        else:
            raise ValueError(f"{where}: '{kind}' schedule needs '{key}'")
    if out["by"] not in ("iter", "epoch"):
        raise ValueError(f"{where}.by: expected 'iter' or 'epoch', got {out['by']!r}")
    if kind == "piecewise" and len(out["values"]) != len(out["boundaries"]) + 1:
        raise ValueError(f"{where}: piecewise needs len(values) == len(boundaries) + 1")
    if int(out["warmup_iters"]) < 0:
        raise ValueError(f"{where}.warmup_iters must be >= 0")
    return out


def lr_at(cfg: Mapping[str, Any], step: int, total_steps: int) -> float:
    """Closed-form lr after ``step`` scheduler steps (steps in the unit of ``cfg['by']``).

    Warmup (``warmup_iters`` > 0): linear from ``warmup_start_lr`` to ``base_lr`` over the warmup
    steps, after which the main schedule starts from its own step 0 (Paddle ``LinearWarmup``
    semantics, as the Paddle 1.x DANet port used); poly then decays over ``total - warmup``.
    """
    warmup = int(cfg["warmup_iters"])
    base = float(cfg["base_lr"])
    if step < warmup:
        start = float(cfg["warmup_start_lr"])
        return start + (base - start) * step / warmup
    t = step - warmup
    kind = cfg["type"]
    if kind == "poly":
        decay_steps = total_steps - warmup
        frac = min(t, decay_steps) / decay_steps
        return (base - float(cfg["end_lr"])) * (1.0 - frac) ** float(cfg["power"]) + float(cfg["end_lr"])
    if kind == "step":
        return base * float(cfg["gamma"]) ** (t // int(cfg["step_size"]))
    if kind == "multistep":
        passed = sum(1 for m in cfg["milestones"] if t >= int(m))
        return base * float(cfg["gamma"]) ** passed
    if kind == "piecewise":
        index = sum(1 for b in cfg["boundaries"] if t >= int(b))
        return float(cfg["values"][index])
    return base


def lr_list(cfg: Mapping[str, Any], total_steps: int) -> List[float]:
    return [lr_at(cfg, s, total_steps) for s in range(total_steps)]
