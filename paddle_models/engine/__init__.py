"""Training-side engine shared by the tools and the alignment checks.

The modules read bottom-up; a module imports only modules of a LOWER layer (``tests/test_layering.py``
checks it, and that no engine module imports inside a function body except optional dependencies):

====  ==========================================================================================
layer modules
====  ==========================================================================================
0     ``distributed`` (unwrap_model, rank / world, sharded iteration, merge over processes,
      progress bar, device), ``optim`` (optimizers, lr schedules), ``sampler`` (seeded, resumable
      batch sampler), ``train_log`` (log, running averages, ETA, curves PNG)
1     ``weights`` (read / load / save weight files; official torch checkpoints via
      ``paddle_models.convert``), ``scores`` (model outputs -> segmentation / change scores)
2     ``evaluator`` (DANet protocols, segmentation and change-detection evaluation),
      ``factseg_eval`` (FactSeg's streamed sliding-window evaluation), ``checkpoint`` (atomic
      training checkpoints, exact resume), ``builder`` (dataset / model / loss from a config)
3     ``tasks`` (segmentation / change-detection adapters: batch layout, loss terms, evaluator,
      export head)
4     ``run_config`` (load + validate a run config against the schema and the registries)
5     ``trainer`` (the dygraph training loop), ``export`` (static export, Paddle Inference,
      exported == dygraph check)
6     ``backends`` (Paddle Inference, ONNX Runtime and OpenVINO behind one interface; Paddle2ONNX
      conversion; the exactness check)
7     ``cli`` (the tools' argument groups, config loading, exit codes); ``evaluate``, ``predict``,
      ``infer``: the whole jobs behind tools/eval.py, predict.py, infer.py
8     ``deploy``: the whole job behind tools/export.py (export, convert, check, all or nothing)
====  ==========================================================================================

Below the engine: the models and losses (``paddle_models``), the converter (``paddle_models.convert``)
and the framework-free code (``rsrepro``, ``rsrepro.data``).
"""

from .optim import build_optimizer, build_scheduler, param_groups

__all__ = ["build_optimizer", "build_scheduler", "param_groups"]
