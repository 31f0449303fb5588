"""Training-side helpers shared by the tools and the alignment checks.

Modules (imported explicitly; this package only re-exports the light ``optim`` builders, which the
alignment harness uses):

- ``optim``: optimizers and lr schedules from config dicts;
- ``builder``: config checks against the registries, dataset / model / loss builders, weight loading;
- ``tasks``: task adapters ("segmentation", "change_detection") — batch layout, loss terms,
  evaluator, export head;
- ``evaluator``: inference protocols (DANet multi-scale / flip / sliding window, FactSeg windows) and
  dataset-level segmentation / change-detection evaluation;
- ``trainer``: the dygraph training loop (AMP, data parallel, logging, checkpoints, exact resume);
- ``checkpoint``: atomic checkpoints and their restoration;
- ``export``: ``paddle.jit.save`` export, Paddle Inference predictors, exported == dygraph check.
"""

from .optim import build_optimizer, build_scheduler, param_groups

__all__ = ["build_optimizer", "build_scheduler", "param_groups"]
