"""Torch twins of the optimizer and schedule builders, as the official training scripts use them."""

from .optim import build_optimizer, build_scheduler, param_groups

__all__ = ["build_optimizer", "build_scheduler", "param_groups"]
