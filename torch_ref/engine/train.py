"""The papers' training scripts, in PyTorch, as the official code runs them (reference for the convergence check).

Each ``*_recipe`` function builds what one official training script builds around the model, with the
official numbers (``docs/<model>.md``), and ``train_official`` runs the loop the official scripts run:

- DANet (junfu1115/DANet ``experiments/segmentation/train.py``, 2019 tree): ``SGD`` with two parameter
  groups, backbone ``pretrained`` at lr and ``head`` at 10 x lr, momentum 0.9, weight decay 1e-4; the
  ``LR_Scheduler('poly')`` sets ``lr = base * (1 - T / N) ** 0.9`` BEFORE iteration T (group 0; the head
  group gets 10 x); loss = the sum of the three cross-entropies.
- DASNet (lehaifeng/DASNet ``train.py``): ``Adam(lr 1e-4, weight_decay 5e-5)``, lr x 0.1 every 20,000
  iterations; loss = L_sa + L_ca + L_saca of ``ContrastiveLoss1``; no augmentation.
- DASNet-V2 (silence-tang/DASNet-V2): the same Adam; the README's piecewise lr by epoch (1e-4 for epochs
  0-19, then 5e-5, 1e-5, 5e-6, 1e-6 from epochs 20, 40, 60, 70) set at the start of each epoch; the
  weighted ``CLNew`` loss. (The official code's lr bug, 1e-6 for epochs 50-59, is not reproduced: the
  package's config follows the README, see docs/dasnet.md.)
- FactSeg (Junjue-Wang/FactSeg on SimpleCV): ``SGD(lr 0.007, momentum 0.9, weight_decay 1e-4)``,
  ``clip_grad_norm_(max_norm=35)`` between backward and step, poly lr (power 0.9) set AFTER each step for
  the next one; CP loss with SOM (ratio 0.1).
- LSNet (qaz670756/LSNet ``train.py``): ``AdamW(lr 1e-3, weight_decay 0.01)``, ``StepLR(8 epochs, 0.5)``
  stepped after each epoch; loss = cross-entropy + the official Dice of the final logits.

Deliberate differences from the official scripts, all needed to compare one run with another:
- the sample order of epoch e is ``rsrepro.sampling.epoch_indices(n, seed, e)`` and sample i of epoch e
  draws its augmentation from ``random.Random(f"{seed}:{e}:{i}")`` (the package's order and draws; the
  official scripts shuffle with torch's and Python's global generators);
- shortened runs: fewer iterations / epochs, small images, the batch size of the run (arguments);
- ``float32_coefficients=True`` (float64 runs) rounds the coefficients that Paddle's optimizers hold in
  float32 (SGD momentum and weight decay, AdamW weight decay) to float32, so that a float64 run of both
  frameworks is the same computation;
- ``disable_dropout`` (float64 runs): random masks cannot be drawn alike in two frameworks;
- ``loss_kwargs``: a loss option for a float64 run (FactSeg's SOM off: its top-k selection is discontinuous).

The evaluation functions are the official protocols at the run's size: DANet single-scale whole image
(``SegmentationMetric``: pixAcc, mIoU over all classes), FactSeg the sliding-window fused-probability
protocol, DASNet the saca-distance threshold sweep (max-F), LSNet the argmax confusion (F1).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from rsrepro.sampling import epoch_indices

from .. import build_loss
from ..metrics import SegmentationMetric, dasnet_validate, lsnet_confusion, lsnet_scores

__all__ = [
    "Recipe",
    "danet_recipe",
    "dasnet_recipe",
    "dasnet_v2_recipe",
    "factseg_recipe",
    "lsnet_recipe",
    "RECIPES",
    "disable_dropout",
    "train_official",
    "evaluate_danet",
    "evaluate_factseg",
    "evaluate_dasnet",
    "evaluate_lsnet",
]


def _f32(value: float, enabled: bool) -> float:
    return float(np.float32(value)) if enabled else float(value)


@dataclass
class Recipe:
    """What an official script builds around the model.

    ``set_lr(optimizer, iteration, epoch, when)`` is called with ``when`` = "before_iteration",
    "after_step" and "epoch_start"; each recipe acts on the moment its official script does."""

    optimizer: torch.optim.Optimizer
    loss: Callable[[Any, torch.Tensor], Any]
    set_lr: Callable[[torch.optim.Optimizer, int, int, str], None]
    clip_norm: float | None = None
    notes: List[str] = field(default_factory=list)


def _set_group_lrs(optimizer: torch.optim.Optimizer, lr: float, head_mult: float = 10.0) -> None:
    # encoding.utils.LR_Scheduler._adjust_learning_rate: group 0 gets lr, every other group lr * 10
    optimizer.param_groups[0]["lr"] = lr
    for group in optimizer.param_groups[1:]:
        group["lr"] = lr * head_mult


def danet_recipe(model: torch.nn.Module, total_iters: int, lr: float = 0.003, momentum: float = 0.9,
                 weight_decay: float = 1e-4, float32_coefficients: bool = False,
        loss_kwargs: Dict[str, Any] | None = None) -> Recipe:
    params = [{"params": model.pretrained.parameters(), "lr": lr},
              {"params": model.head.parameters(), "lr": lr * 10}]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=_f32(momentum, float32_coefficients),
                                weight_decay=_f32(weight_decay, float32_coefficients))

    def set_lr(opt: torch.optim.Optimizer, iteration: int, epoch: int, when: str) -> None:
        if when == "before_iteration":
            _set_group_lrs(opt, lr * pow(1 - 1.0 * iteration / total_iters, 0.9))

    return Recipe(optimizer, build_loss("danet_ce", **{"weights": (1.0, 1.0, 1.0), "ignore_index": 255,
                                                      **(loss_kwargs or {})}), set_lr)


def _adam(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # Adam's coefficients stay exact in Paddle's float64 kernels (betas, eps); its weight decay is L2
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)


def dasnet_recipe(model: torch.nn.Module, total_iters: int, lr: float = 1e-4, weight_decay: float = 5e-5,
                  step_size: int = 20000, gamma: float = 0.1, float32_coefficients: bool = False,
        loss_kwargs: Dict[str, Any] | None = None) -> Recipe:
    optimizer = _adam(model, lr, weight_decay)

    def set_lr(opt: torch.optim.Optimizer, iteration: int, epoch: int, when: str) -> None:
        if when == "before_iteration":
            for group in opt.param_groups:
                group["lr"] = lr * gamma ** (iteration // step_size)

    return Recipe(optimizer, build_loss("dasnet_contrastive", **{"variant": "official", **(loss_kwargs or {})}), set_lr)


DASNET_V2_SCHEDULE = ((20, 1e-4), (40, 5e-5), (60, 1e-5), (70, 5e-6), (None, 1e-6))


def dasnet_v2_recipe(model: torch.nn.Module, total_iters: int, lr: float = 1e-4, weight_decay: float = 5e-5,
                     float32_coefficients: bool = False,
                     schedule: Sequence[Tuple[int | None, float]] = DASNET_V2_SCHEDULE,
        loss_kwargs: Dict[str, Any] | None = None) -> Recipe:
    optimizer = _adam(model, lr, weight_decay)

    def set_lr(opt: torch.optim.Optimizer, iteration: int, epoch: int, when: str) -> None:
        if when == "epoch_start":
            value = next(v for end, v in schedule if end is None or epoch < end)
            for group in opt.param_groups:
                group["lr"] = value

    return Recipe(optimizer, build_loss("dasnet_contrastive", **{"variant": "weighted", **(loss_kwargs or {})}), set_lr)


def factseg_recipe(model: torch.nn.Module, total_iters: int, lr: float = 0.007, momentum: float = 0.9,
                   weight_decay: float = 1e-4, power: float = 0.9, clip_norm: float = 35.0,
                   float32_coefficients: bool = False,
        loss_kwargs: Dict[str, Any] | None = None) -> Recipe:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=_f32(momentum, float32_coefficients),
                                weight_decay=_f32(weight_decay, float32_coefficients))

    def set_lr(opt: torch.optim.Optimizer, iteration: int, epoch: int, when: str) -> None:
        if when == "after_step":  # SimpleCV: after the step, the lr of the next one
            for group in opt.param_groups:
                group["lr"] = lr * pow(1 - (iteration + 1) / total_iters, power)

    loss = build_loss("factseg_joint", **{"ratio": 0.1, "ignore_index": 255, **(loss_kwargs or {})})
    return Recipe(optimizer, loss, set_lr, clip_norm=clip_norm)


def lsnet_recipe(model: torch.nn.Module, total_iters: int, lr: float = 1e-3, weight_decay: float = 0.01,
                 step_size: int = 8, gamma: float = 0.5, float32_coefficients: bool = False,
        loss_kwargs: Dict[str, Any] | None = None) -> Recipe:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=_f32(weight_decay, float32_coefficients))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)

    def set_lr(opt: torch.optim.Optimizer, iteration: int, epoch: int, when: str) -> None:
        if when == "epoch_end":
            scheduler.step()

    return Recipe(optimizer, build_loss("lsnet_hybrid", **{"dice": "official", **(loss_kwargs or {})}), set_lr)


RECIPES: Dict[str, Callable[..., Recipe]] = {
    "danet": danet_recipe,
    "dasnet": dasnet_recipe,
    "dasnet_v2": dasnet_v2_recipe,
    "factseg": factseg_recipe,
    "lsnet": lsnet_recipe,
}


def disable_dropout(model: torch.nn.Module) -> int:
    """Set every dropout probability to 0 (float64 alignment runs); returns how many layers."""
    count = 0
    for module in model.modules():
        if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout2d)):
            module.p = 0.0
            count += 1
    return count


def _collate(samples: Sequence[Sequence[Any]], num_inputs: int, dtype: torch.dtype) -> Tuple[List[torch.Tensor],
                                                                                              torch.Tensor]:
    columns = list(zip(*samples))
    inputs = [torch.stack([torch.as_tensor(x) for x in col]).to(dtype) for col in columns[:num_inputs]]
    label = torch.stack([torch.as_tensor(x) for x in columns[num_inputs]])
    return inputs, label


def _terms(loss: Any, outputs: Any, label: torch.Tensor) -> Dict[str, torch.Tensor]:
    if hasattr(loss, "terms"):
        named = loss.terms(outputs, label)
        return {"loss": sum(named.values()), **named}
    return {"loss": loss(outputs, label)}


def train_official(model: torch.nn.Module, recipe: Recipe, load: Callable[[int, random.Random], Sequence[Any]],
                   num_samples: int, batch_size: int, total_iters: int, seed: int, num_inputs: int = 1,
                   shuffle: bool = True, drop_last: bool = True, dtype: torch.dtype = torch.float32,
                   term_names: Sequence[str] = (),
                   after_iteration: Callable[[int], None] | None = None) -> Dict[str, Any]:
    """Train ``model`` for ``total_iters`` iterations the official way (module docstring).

    ``load(i, rng)`` returns sample i (inputs..., label) drawing its augmentation from ``rng``. Returns
    ``{"losses": [{term: value} per iteration], "lr": [...], "seconds": s}``; the terms are named by
    ``term_names`` in order when the count matches (as the Paddle trainer names them), else by the loss.
    ``after_iteration(n)`` is called after the n-th iteration (1-based), e.g. to evaluate."""
    model.train()
    iters_per_epoch = (num_samples // batch_size) if drop_last else math.ceil(num_samples / batch_size)
    if iters_per_epoch == 0:
        raise ValueError(f"{num_samples} samples make no batch of {batch_size} with drop_last")
    losses: List[Dict[str, float]] = []
    lrs: List[float] = []
    iteration, epoch = 0, 0
    start = time.perf_counter()
    while iteration < total_iters:
        recipe.set_lr(recipe.optimizer, iteration, epoch, "epoch_start")
        order = epoch_indices(num_samples, seed, epoch, shuffle)
        for b in range(iters_per_epoch):
            indices = order[b * batch_size:(b + 1) * batch_size]
            samples = [load(i, random.Random(f"{seed}:{epoch}:{i}")) for i in indices]
            inputs, label = _collate(samples, num_inputs, dtype)
            recipe.set_lr(recipe.optimizer, iteration, epoch, "before_iteration")
            lrs.append(float(recipe.optimizer.param_groups[0]["lr"]))
            recipe.optimizer.zero_grad()
            terms = _terms(recipe.loss, model(*inputs), label)
            if len(term_names) == len(terms) - 1:
                terms = {"loss": terms["loss"], **dict(zip(term_names, list(terms.values())[1:]))}
            terms["loss"].backward()
            if recipe.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                               max_norm=recipe.clip_norm, norm_type=2)
            recipe.optimizer.step()
            recipe.set_lr(recipe.optimizer, iteration, epoch, "after_step")
            losses.append({k: float(v.detach()) for k, v in terms.items()})
            iteration += 1
            if after_iteration is not None:
                after_iteration(iteration)
            if iteration >= total_iters:
                break
        else:
            recipe.set_lr(recipe.optimizer, iteration, epoch, "epoch_end")
            epoch += 1
            continue
        break
    return {"losses": losses, "lr": lrs, "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def evaluate_danet(model: torch.nn.Module, samples: Sequence[Tuple[torch.Tensor, torch.Tensor]],
                   num_classes: int = 19) -> Dict[str, float]:
    """Single scale, whole image, the fused output; the official ``SegmentationMetric`` (label -1 ignored)."""
    model.eval()
    metric = SegmentationMetric(num_classes)
    for image, label in samples:
        label = torch.as_tensor(label).long()
        label = torch.where(label == 255, torch.full_like(label, -1), label)
        metric.update(model(torch.as_tensor(image)[None].float())[0], label[None])
    pix_acc, miou = metric.get()
    return {"miou": miou, "pixel_accuracy": pix_acc}


def _windows(size: int, window: int, stride: int) -> List[int]:
    """Start offsets of the official sliding window along one side (last window shifted inward)."""
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


@torch.no_grad()
def evaluate_factseg(model: torch.nn.Module, samples: Sequence[Tuple[np.ndarray, np.ndarray]],
                     num_classes: int = 16, window: int = 896, stride: int = 512, divisor: int = 32,
                     mean: Sequence[float] = (123.675, 116.28, 103.53),
                     std: Sequence[float] = (58.395, 57.12, 57.375)) -> Dict[str, float]:
    """``SegmSlidingWinInference``: windows over the uint8 image, each normalised and zero-padded to a
    multiple of ``divisor``, fused probabilities summed / counted, argmax; mIoU over all classes of one
    confusion matrix (background included)."""
    model.eval()
    confusion = np.zeros((num_classes, num_classes), np.int64)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    for image, label in samples:
        x = (torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() - mean_t) / std_t
        h, w = x.shape[1:]
        total = torch.zeros(num_classes, h, w)
        count = torch.zeros(1, h, w)
        for y0 in _windows(h, window, stride):
            for x0 in _windows(w, window, stride):
                piece = x[:, y0:y0 + window, x0:x0 + window]
                ph, pw = piece.shape[1:]
                padded = F.pad(piece, (0, -pw % divisor, 0, -ph % divisor))
                prob = model(padded[None])[0, :, :ph, :pw]
                total[:, y0:y0 + ph, x0:x0 + pw] += prob
                count[:, y0:y0 + ph, x0:x0 + pw] += 1
        pred = (total / count).argmax(0).numpy().ravel()
        gt = np.asarray(label).astype(np.int64).ravel()
        keep = gt != 255
        confusion += np.bincount(gt[keep] * num_classes + pred[keep], minlength=num_classes ** 2
                                 ).reshape(num_classes, num_classes)
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return {"miou": float(iou.mean())}


@torch.no_grad()
def evaluate_dasnet(model: torch.nn.Module, samples: Sequence[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                    thresholds: Sequence[float]) -> Dict[str, float]:
    """The official validation: per pair, ``F.pairwise_distance`` of the saca embeddings (eps 1e-6), resized
    to the label with align_corners=True; the dataset-level threshold sweep; max-F."""
    model.eval()
    scores, labels = [], []
    for t0, t1, label in samples:
        e0, e1 = model(torch.as_tensor(t0)[None].float(), torch.as_tensor(t1)[None].float())[2]
        b, c, h, w = e0.shape
        flat0 = e0.permute(0, 2, 3, 1).reshape(-1, c)
        flat1 = e1.permute(0, 2, 3, 1).reshape(-1, c)
        distance = F.pairwise_distance(flat0, flat1, p=2).reshape(b, 1, h, w)
        size = tuple(torch.as_tensor(label).shape[-2:])
        distance = F.interpolate(distance, size=size, mode="bilinear", align_corners=True)
        scores.append(distance[0, 0])
        labels.append(torch.as_tensor(label).long())
    result = dasnet_validate(scores, labels, thresholds, ignore_index=None)
    return {"max_f": float(result["MaxF"]), "best_threshold": float(result["BestThresh"])}


@torch.no_grad()
def evaluate_lsnet(model: torch.nn.Module, samples: Sequence[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
                   ) -> Dict[str, float]:
    """The official test script: argmax of the final logits, one confusion over the split, P / R / F1 / OA."""
    model.eval()
    counts = np.zeros(4, np.int64)
    for t0, t1, label in samples:
        logits = model(torch.as_tensor(t0)[None].float(), torch.as_tensor(t1)[None].float())
        logits = logits[-1] if isinstance(logits, (list, tuple)) else logits
        counts += np.array(lsnet_confusion(logits.argmax(1), torch.as_tensor(label)[None].long()))
    return lsnet_scores(*counts.tolist())
