"""Step 5: learning-rate schedules — Paddle's scheduler == the PyTorch schedule it reproduces.

For every case's recipe schedule (and the same schedule with a linear warmup), and for every
schedule type the configs use (poly, step, multistep, piecewise, with and without warmup), the
lr of every step from Paddle's scheduler (``paddle_models.engine.build_scheduler``) is compared
with torch's (``torch_ref.engine.optim.build_scheduler`` on a real optimizer) and with the closed
form (``rsrepro.schedule_math.lr_at``). Bar: equal within 1e-10 at every step.

    python -m alignment.check_lr --model danet_r50
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Mapping

import numpy as np

from .cases import AlignCase
from .harness import Row, StepResult, result_stem, run_step, save_reprod_pair

LR_ABS = 1e-10
GENERIC_SCHEDULES: Dict[str, Dict[str, Any]] = {
    "poly_warmup": {"type": "poly", "base_lr": 0.01, "power": 0.9, "warmup_iters": 37,
                    "warmup_start_lr": 1e-5},
    "step": {"type": "step", "base_lr": 1e-4, "step_size": 97, "gamma": 0.1},
    "multistep": {"type": "multistep", "base_lr": 1e-3, "milestones": [120, 300, 301], "gamma": 0.5},
    "piecewise_epoch": {"type": "piecewise", "base_lr": 1e-4, "boundaries": [20, 40, 60, 70],
                        "values": [1e-4, 5e-5, 1e-5, 5e-6, 1e-6], "by": "epoch"},
}


def schedule_lrs(cfg: Mapping[str, Any], total: int) -> Dict[str, np.ndarray]:
    import torch

    from paddle_models.engine import build_scheduler as paddle_scheduler
    from rsrepro.schedule_math import lr_list, normalize_schedule
    from torch_ref.engine.optim import build_optimizer, build_scheduler

    paddle_sched = paddle_scheduler(cfg, total)
    paddle_lrs = []
    for _ in range(total):
        paddle_lrs.append(paddle_sched())
        paddle_sched.step()
    params = torch.nn.Linear(1, 1)
    optimizer = build_optimizer({"type": "momentum"}, params, float(cfg["base_lr"]))
    torch_sched = build_scheduler(cfg, total, optimizer)
    torch_lrs = []
    for _ in range(total):
        torch_lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        torch_sched.step()
    closed = lr_list(normalize_schedule(cfg), total)
    return {"torch": np.array(torch_lrs), "paddle": np.array(paddle_lrs), "closed_form": np.array(closed)}


def lr_rows(name: str, lrs: Dict[str, np.ndarray]) -> List[Row]:
    rows = []
    for other in ("paddle", "closed_form"):
        diff = np.abs(lrs["torch"] - lrs[other])
        rows.append(Row(f"{name}.torch_vs_{other}", float(diff.max()), float(diff.mean()),
                        float(np.abs(lrs["torch"]).max()), float(np.abs(lrs["torch"]).mean()),
                        f"max<={LR_ABS:g}", bool(diff.max() <= LR_ABS)))
    return rows


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    total = args.total_steps
    schedules = {"recipe": dict(case.lr_scheduler),
                 "recipe_warmup": {**case.lr_scheduler, "warmup_iters": total // 20, "warmup_start_lr": 0.0},
                 **GENERIC_SCHEDULES}
    rows: List[Row] = []
    for name, cfg in schedules.items():
        lrs = schedule_lrs(cfg, total)
        stem = result_stem(f"{case.name}-{name}", args.size, "float64")
        torch_info, paddle_info = save_reprod_pair(args.out, "lr", stem, {"lr": lrs["torch"]},
                                                   {"lr": lrs["paddle"]})
        lrs["torch"], lrs["paddle"] = torch_info["lr"], paddle_info["lr"]
        rows += lr_rows(name, lrs)
    return StepResult("lr", case.name, args.size, "float64", rows,
                      notes=[f"{total} steps per schedule; lr values are Python floats (float64)"])


def main(argv=None) -> int:
    from .harness import make_parser

    parser = make_parser("lr")
    parser.add_argument("--total-steps", type=int, default=1000)
    return run_step("lr", run_case, argv, parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())
