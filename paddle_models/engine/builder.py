"""Config -> objects: the dataset, model and loss of a checked run config (``run_config.load_run_config``).

``build_model`` loads ``model.pretrained`` (Paddle weights or an official torch checkpoint) through
``weights.load_weights``. Datasets come from ``rsrepro.data.DATASETS`` (each dataset module registers its
classes).
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping

import paddle

import paddle_models
from rsrepro.config import ConfigError, source_of
from rsrepro.data import DATASETS, DatasetError

from .weights import load_weights

__all__ = ["MODEL_RESERVED", "dataset_kwargs", "build_dataset", "build_model", "build_loss"]

# model-section keys that are not model arguments
MODEL_RESERVED = ("type", "pretrained", "pretrained_prefix", "pretrained_strict")


def dataset_kwargs(section: Mapping[str, Any]) -> Dict[str, Any]:
    """The dataset class's keyword arguments of a ``dataset.<split>`` section (``transforms`` -> ``transform``)."""
    kwargs = {k: v for k, v in section.items() if k != "type"}
    if "transforms" in kwargs:
        transforms = kwargs.pop("transforms")
        if transforms is not None:
            kwargs["transform"] = transforms
    return kwargs


def build_dataset(cfg: Mapping[str, Any], split: str, seed: int | None = None):
    """The ``dataset.<split>`` of the config. ``seed`` is passed when the dataset takes one and
    the config does not set it (reproducible per-sample augmentation)."""
    section = cfg["dataset"].get(split)
    if section is None:
        raise ConfigError(f"{cfg.get('_config_path', '<config>')}: dataset.{split} is not configured")
    factory = DATASETS.get(section["type"])
    kwargs = dataset_kwargs(section)
    if seed is not None and "seed" in inspect.signature(factory).parameters and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        return factory(**kwargs)
    except DatasetError as exc:
        raise DatasetError(f"dataset.{split} ({source_of(cfg, 'dataset.' + split)}): {exc}") from None


def build_model(cfg: Mapping[str, Any]) -> paddle.nn.Layer:
    """The configured model; ``model.pretrained`` weights are loaded when given."""
    model_cfg = cfg["model"]
    kwargs = {k: v for k, v in model_cfg.items() if k not in MODEL_RESERVED}
    model = paddle_models.build_model(model_cfg["type"], **kwargs)
    if model_cfg.get("pretrained"):
        load_weights(model, model_cfg["pretrained"], prefix=model_cfg.get("pretrained_prefix", ""),
                     strict=model_cfg.get("pretrained_strict", True))
    return model


def build_loss(cfg: Mapping[str, Any]):
    loss_cfg = cfg["loss"]
    return paddle_models.build_loss(loss_cfg["type"], **{k: v for k, v in loss_cfg.items() if k != "type"})
