"""Evaluate trained weights on a config's dataset with the config's protocol (CLI: tools/eval.py)."""

from __future__ import annotations

import os
from typing import Any, Dict

from rsrepro.fileio import atomic_write_json
from rsrepro.safe_load import trusted_pickle

from .builder import build_dataset, build_model
from .distributed import select_device
from .tasks import build_task
from .weights import load_trained_weights

__all__ = ["evaluate"]


def evaluate(cfg: Dict[str, Any], weights: str, split: str = "val", max_samples: int | None = None,
             out: str | None = None, out_dir: str | None = None, progress: bool = True,
             device: str | None = None, trust_pickle: bool = False) -> Dict[str, Any]:
    """Build the model, load ``weights``, evaluate ``dataset.<split>``; write and return the result.
    ``trust_pickle``: read ``weights`` (and ``model.pretrained``) with plain pickle (``rsrepro.safe_load``)."""
    select_device(device)
    task = build_task(cfg)
    dataset = build_dataset(cfg, split)
    with trusted_pickle(trust_pickle or None):
        model = build_model(cfg)
        load_trained_weights(model, weights)
    evaluator = task.build_evaluator(dataset)
    ec = cfg["eval"]
    kwargs = dict(batch_size=ec["batch_size"], num_workers=ec["num_workers"], max_samples=max_samples,
                  progress=progress)
    stem = os.path.splitext(os.path.basename(weights))[0]
    work_dir = cfg.get("work_dir") or os.path.join("output", os.path.splitext(os.path.basename(cfg["_config_path"]))[0])
    if task.name == "change_detection":
        kwargs["out_dir"] = out_dir or os.path.join(work_dir, f"eval_{stem}")
    result = evaluator.evaluate(model, dataset, **kwargs)
    result["weights"] = os.path.abspath(weights)
    result["split"] = split
    print(evaluator.format(result))
    if task.name != "change_detection" or out:
        path = out or os.path.join(work_dir, f"eval_{stem}.json")
        atomic_write_json(path, result)
        print(f"metrics written to {path}")
    return result
