"""Training-side helpers shared by tools/train.py and the alignment checks."""

from .optim import build_optimizer, build_scheduler, param_groups

__all__ = ["build_optimizer", "build_scheduler", "param_groups"]
