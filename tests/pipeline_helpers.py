"""Helpers of the pipeline tests: tiny registered models / dataset and a tiny synthetic Cityscapes.

The tiny models exercise the engine's mechanics in milliseconds per step; DANet itself is used where
the model matters (resume equality, export, data parallel).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

import numpy as np
import paddle
import paddle.nn.functional as F
import yaml
from paddle import nn

import paddle_models
from rsrepro.data import DATASETS
from rsrepro.data.synthetic import generate_cityscapes


class TinySeg(nn.Layer):
    """conv-BN-ReLU, strided conv, dropout, ``num_outputs`` 1x1 heads upsampled to the input size."""

    def __init__(self, num_classes: int = 19, width: int = 8, num_outputs: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2D(3, width, 3, padding=1), nn.BatchNorm2D(width), nn.ReLU(),
                                  nn.Conv2D(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.drop = nn.Dropout2D(0.1)
        self.heads = nn.LayerList([nn.Conv2D(width, num_classes, 1) for _ in range(num_outputs)])

    def forward(self, x):
        size = x.shape[2:]
        f = self.drop(self.stem(x))
        return tuple(F.interpolate(h(f), size=size, mode="bilinear", align_corners=True) for h in self.heads)


class TinyCD(nn.Layer):
    """Siamese: a shared conv encoder on t0 and t1, |f0 - f1| -> 2-class logits (one output)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2D(3, width, 3, padding=1), nn.ReLU())
        self.classifier = nn.Conv2D(width, 2, 1)

    def forward(self, t0, t1):
        return (self.classifier(paddle.abs(self.encoder(t0) - self.encoder(t1))),)


class TinyCDDataset:
    """Random image pairs with one changed square (label 1), 0 elsewhere; ``root`` is not read."""

    NUM_CLASSES = 2
    PALETTE = ((0, 0, 0), (255, 255, 255))

    def __init__(self, root: str, split: str = "train", num: int = 6, size: int = 24, seed: int = 0,
                 transform: Any = None) -> None:
        self.root = root
        self.samples = []
        rng = np.random.default_rng(seed + (0 if split == "train" else 1000))
        for _ in range(num):
            t0 = rng.normal(0, 1, (3, size, size)).astype(np.float32)
            t1 = t0.copy()
            label = np.zeros((size, size), np.int64)
            y, x = rng.integers(0, size // 2, 2)
            t1[:, y:y + size // 3, x:x + size // 3] += 2.0
            label[y:y + size // 3, x:x + size // 3] = 1
            self.samples.append((t0, t1, label))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.samples[index]

    @staticmethod
    def preprocess_pair(t0: np.ndarray, t1: np.ndarray):
        return tuple(np.ascontiguousarray((t.astype(np.float32) / 255.0 - 0.5).transpose(2, 0, 1)) for t in (t0, t1))


def _register() -> None:
    if "pipeline_tiny_seg" not in paddle_models.MODELS.names():
        paddle_models.MODELS.register("pipeline_tiny_seg")(
            lambda num_classes=19, width=8, num_outputs=3: TinySeg(num_classes, width, num_outputs))
        paddle_models.MODELS.register("pipeline_tiny_cd")(lambda width=8: TinyCD(width))
    if "pipeline_tiny_cd" not in DATASETS.names():
        DATASETS.register("pipeline_tiny_cd")(TinyCDDataset)


_register()


def make_cityscapes(root: str, num_train: int = 6, num_val: int = 2, size=(32, 64)) -> str:
    generate_cityscapes(root, num_train=num_train, num_val=num_val, size=size, seed=0)
    return root


def seg_config(data_root: str, model: Dict[str, Any] | None = None, **train: Any) -> Dict[str, Any]:
    """A small segmentation config dict (DANet loss, DANetTrain augmentation with blur + jitter)."""
    cfg = {
        "task": {"type": "segmentation", "output_names": ["fused", "pam", "cam"]},
        "model": model or {"type": "pipeline_tiny_seg", "num_classes": 19},
        "loss": {"type": "danet_ce", "weights": [1.0, 1.0, 1.0], "ignore_index": 255},
        "dataset": {
            "train": {"type": "cityscapes", "root": data_root, "split": "train",
                      "transforms": [{"type": "DANetTrain", "base_size": 32, "crop_size": 32,
                                      "scale_range": [0.75, 1.25], "gaussian_blur": True, "color_jitter": True}]},
            "val": {"type": "cityscapes", "root": data_root, "split": "val"},
        },
        "train": {"batch_size": 2, "iters": 4, "log_interval": 1, "save_interval": 0, "seed": 3,
                  "eval_at_end": False, "plot": False, **train},
        "optimizer": {"type": "momentum", "momentum": 0.9, "weight_decay": 1.0e-4, "lr_mult": {"head.": 10.0}},
        "lr_scheduler": {"type": "poly", "base_lr": 0.01, "power": 0.9, "by": "iter"},
        "eval": {"mode": "whole"},
    }
    return cfg


def write_config(path: str, cfg: Dict[str, Any]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(cfg, handle, sort_keys=False)
    return path


def train_records(history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in history if r["type"] == "train"]
