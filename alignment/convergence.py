"""Training to the end in both frameworks: the machinery of ``check_convergence``.

Per case (``AlignCase.convergence``) and size, on one generated dataset in the real on-disk layout:

- the Paddle side is the real ``paddle_models.engine.trainer.Trainer`` with the paper config, overridden
  only in data root, image / crop size, batch size, length, seed, logging and evaluation schedule;
- the torch side is the official training script of the paper (``torch_ref.engine.train``: its optimizer,
  parameter groups, lr rule, loss, gradient clipping, reference dataset with the official augmentation
  code, and the official evaluation), run on the same data;
- both start from the same weights (the torch model's initialisation for the seed, converted), see the
  samples in the same order (``rsrepro.sampling.epoch_indices``) and draw the same augmentation
  (``random.Random(f"{seed}:{epoch}:{index}")`` per sample).

``training_runs`` runs every training run of a case (``training_run``: one framework, one dtype, one seed),
one after the other or ``jobs`` at a time in separate processes:

- float64: both frameworks (Paddle: ``train.dtype: float64``; torch: the model in float64 with the
  coefficients Paddle keeps in float32 rounded alike, dropout off on both sides), and the torch "floor" run
  from weights nudged by 1e-15; every logged loss term, the lr and the final parameters are compared;
- float32: per seed, each framework trains the whole shortened recipe (dropout on) and evaluates with its
  own protocol; the final metrics, their mean and spread, and the loss / metric curves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from .cases import AlignCase, ConvergenceSize, ConvergenceSpec

REPO = Path(__file__).resolve().parents[1]
MODEL_RESERVED = ("type", "pretrained", "pretrained_prefix", "pretrained_strict")
DANET_EVAL = ["eval.mode=whole", "eval.flip=false", "eval.scales=[1.0]", "eval.multi_scales=false",
              "eval.base_size=null", "eval.crop_size=null"]


# ------------------------------------------------------------------------------------ data families
def generate(spec: ConvergenceSpec, size: ConvergenceSize, root: str, data_seed: int = 0) -> str:
    from rsrepro.data.synthetic import generate_cdd, generate_cityscapes, generate_isaid

    kwargs = dict(size.data)
    if spec.family == "cityscapes":
        return generate_cityscapes(root, seed=data_seed, **kwargs)["root"]
    if spec.family in ("cdd_dasnet", "cdd_lsnet"):
        return generate_cdd(root, seed=data_seed, num_test=0, **kwargs)["root"]
    if spec.family == "isaid":
        return generate_isaid(root, seed=data_seed, **kwargs)["root"]
    raise ValueError(f"unknown convergence data family {spec.family!r}")


def paddle_data_overrides(spec: ConvergenceSpec, size: ConvergenceSize, root: str) -> List[str]:
    out = [f"dataset.train.root={root}", f"dataset.val.root={root}"]
    if spec.family == "cityscapes":
        out.append(f"dataset.train.transforms=[{{type: DANetTrain, base_size: {size.crop}, crop_size: {size.crop}, "
                   "scale_range: [0.75, 2.0], flip_prob: 0.5}]")
        out += DANET_EVAL
    elif spec.family == "isaid":
        out += [f"dataset.train.window={size.crop}", f"dataset.train.stride={isaid_stride(size)}",
                f"dataset.train.transforms=[{{type: FactSegTrain, crop_size: {size.crop}}}]",
                f"eval.crop_size={size.crop}", f"eval.stride={isaid_stride(size)}"]
    return out


def isaid_stride(size: ConvergenceSize) -> int:
    """Window 896 / stride 512 in the official config: the same proportion (4/7) at the run's window."""
    return size.crop * 4 // 7


def torch_train_data(spec: ConvergenceSpec, size: ConvergenceSize, root: str
                     ) -> Tuple[Callable[[int, Any], Sequence[Any]], int, int]:
    """(load(i, rng) -> (inputs..., label), number of samples, number of inputs) from the reference readers."""
    if spec.family == "cityscapes":
        from torch_ref.datasets.cityscapes import CityscapesSegmentation

        ds = CityscapesSegmentation(root, "train", mode="train", base_size=size.crop, crop_size=size.crop)
        return ds.load, len(ds), 1
    if spec.family == "cdd_dasnet":
        from torch_ref.datasets.cdd import DASNetCDDReference

        ds = DASNetCDDReference(root, root, os.path.join(root, "train.txt"), "train", transform_med=None,
                                label_rule="ge128")
        return (lambda i, rng: ds[i][:3]), len(ds), 2
    if spec.family == "cdd_lsnet":
        from torch_ref.datasets.cdd import LSNetCDDReference

        ds = LSNetCDDReference(root, "train", aug=True)

        def load(i: int, rng: Any) -> Sequence[Any]:
            t0, t1, mask, _ = ds.load(i, rng)
            return t0, t1, mask.long()

        return load, len(ds), 2
    if spec.family == "isaid":
        from torch_ref.datasets.isaid import ISAIDPatchReference

        ds = ISAIDPatchReference(os.path.join(root, "train", "images"), os.path.join(root, "train", "masks"),
                                 size.crop, isaid_stride(size))
        return ds.load, len(ds), 1
    raise ValueError(f"unknown convergence data family {spec.family!r}")


def torch_val_samples(spec: ConvergenceSpec, root: str) -> List[Tuple[Any, ...]]:
    if spec.family == "cityscapes":
        from torch_ref.datasets.cityscapes import CityscapesSegmentation

        ds = CityscapesSegmentation(root, "val", mode="testval")
        return [ds[i] for i in range(len(ds))]
    if spec.family == "cdd_dasnet":
        from torch_ref.datasets.cdd import DASNetCDDReference

        ds = DASNetCDDReference(root, root, os.path.join(root, "val.txt"), "val", transform_med=None,
                                label_rule="ge128")
        return [ds[i][:3] for i in range(len(ds))]
    if spec.family == "cdd_lsnet":
        from torch_ref.datasets.cdd import LSNetCDDReference

        ds = LSNetCDDReference(root, "val", aug=False)
        return [(s[0], s[1], s[2].long()) for s in (ds[i] for i in range(len(ds)))]
    if spec.family == "isaid":
        from torch_ref.datasets.isaid import ISAIDFolderReference

        ds = ISAIDFolderReference(os.path.join(root, "val", "images"), os.path.join(root, "val", "masks"))
        return [ds[i][:2] for i in range(len(ds))]
    raise ValueError(f"unknown convergence data family {spec.family!r}")


def torch_evaluate(spec: ConvergenceSpec, size: ConvergenceSize, model: Any, samples: Sequence[Any]) -> float:
    from torch_ref.engine import train as official

    if spec.family == "cityscapes":
        return official.evaluate_danet(model, samples)["miou"]
    if spec.family == "cdd_dasnet":
        return official.evaluate_dasnet(model, samples, np.linspace(0.0, 2.2, 96))["max_f"]
    if spec.family == "cdd_lsnet":
        f1 = official.evaluate_lsnet(model, samples)["f1"]
        return 0.0 if math.isnan(f1) else f1  # official: 0/0 = nan when nothing is predicted changed
    if spec.family == "isaid":
        return official.evaluate_factseg(model, samples, window=size.crop, stride=isaid_stride(size))["miou"]
    raise ValueError(f"unknown convergence data family {spec.family!r}")


def chance_level(spec: ConvergenceSpec, root: str) -> Dict[str, Any]:
    """The metric of a predictor that uses no image: segmentation, every pixel the most frequent TRAINING
    class; change detection, every pixel changed (the best constant for max-F and F1)."""
    from rsrepro.metrics import ConfusionMatrix, binary_scores

    if spec.family in ("cdd_dasnet", "cdd_lsnet"):
        labels = [np.asarray(s[2]).ravel() for s in torch_val_samples(spec, root)]
        pos = int(sum(int((x == 1).sum()) for x in labels))
        neg = int(sum(int((x == 0).sum()) for x in labels))
        f1 = binary_scores(pos, neg, 0, 0)["f1"]
        return {"value": float(f1), "rule": f"every pixel changed ({pos / (pos + neg):.1%} of val pixels changed)"}
    num_classes = 19 if spec.family == "cityscapes" else 16
    train_counts = np.zeros(num_classes, np.int64)
    if spec.family == "cityscapes":
        from rsrepro.data import CityscapesDataset

        train = CityscapesDataset(root, "train")
        labels = [train.read_pair(i)[1] for i in range(len(train))]
    else:
        from rsrepro.data.isaid import ISAIDDataset

        train = ISAIDDataset(root, "train", mode="val", raw=True)
        labels = [train[i][1] for i in range(len(train))]
    for label in labels:
        keep = label != 255
        train_counts += np.bincount(label[keep].astype(np.int64), minlength=num_classes)[:num_classes]
    majority = int(train_counts.argmax())
    matrix = ConfusionMatrix(num_classes, 255)
    for sample in torch_val_samples(spec, root):
        label = np.asarray(sample[1]).astype(np.int64)
        label = np.where(label < 0, 255, label)
        matrix.update(np.full_like(label, majority), label)
    return {"value": matrix.miou(), "rule": f"every pixel the most frequent training class ({majority})"}


# ------------------------------------------------------------------------------------ the two sides
def _model_kwargs(cfg: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in cfg["model"].items() if k not in MODEL_RESERVED}


def round_bn_momentum_to_float32(model: Any) -> None:
    """Paddle's batch_norm holds its momentum (0.9 = torch 0.1) as a float32 attribute, so its running
    statistics move by 1 - float32(0.9) = 0.10000002; float64 runs give torch the same factor."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.momentum is not None:
            module.momentum = 1.0 - float(np.float32(1.0 - module.momentum))


def initial_weights(cfg: Dict[str, Any], seed: int, dtype: str, path: str, case: AlignCase | None = None,
                    perturb: float = 0.0) -> Any:
    """The torch model initialised with ``seed``, then given trained-network statistics
    (``harness.randomize_reference`` without the classifier rescaling: a trained backbone under a fresh
    head, the start of the papers' fine-tuning runs, which begin from ImageNet weights that cannot be
    downloaded here), its weights converted to Paddle and saved at ``path``. float64: BatchNorm eps and
    momentum rounded to float32, as Paddle holds them. ``perturb`` multiplies every weight by (1 + perturb)
    AFTER the Paddle copy is saved (the chaos-floor run). Returns the torch model."""
    import paddle
    import torch

    import paddle_models
    import torch_ref
    from paddle_models.convert import convert_state_dict

    from .harness import paddle_dtype, randomize_reference, round_bn_eps_to_float32

    torch.manual_seed(seed)
    model = torch_ref.build_model(cfg["model"]["type"], **_model_kwargs(cfg))
    randomize_reference(model, seed, case, scale_logits=False)
    if dtype == "float64":
        model = model.double()
        round_bn_eps_to_float32(model)
        round_bn_momentum_to_float32(model)
    with paddle_dtype(dtype):
        template = paddle_models.build_model(cfg["model"]["type"], **_model_kwargs(cfg))
    paddle.save(convert_state_dict(model.state_dict(), template), path)
    if perturb:
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(1.0 + perturb)
    return model


def _disable_paddle_dropout(model: Any) -> int:
    import paddle

    count = 0
    for layer in model.sublayers():
        if isinstance(layer, (paddle.nn.Dropout, paddle.nn.Dropout2D)):
            layer.p = 0.0
            count += 1
    return count


def run_paddle(spec: ConvergenceSpec, size: ConvergenceSize, root: str, seed: int, dtype: str, init: str,
               work: str, total_iters: int, evals: int, loss_kwargs: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """The real Trainer on the paper config (overrides: data, size, length, seed, logging, evaluation)."""
    from paddle_models.engine.run_config import load_run_config
    from paddle_models.engine.trainer import Trainer

    overrides = paddle_data_overrides(spec, size, root) + [
        f"train.batch_size={size.batch_size}", f"train.seed={seed}", "train.num_workers=0", "train.log_interval=1",
        "train.save_interval=0", "train.plot=false", "train.amp.level=null", "train.sync_bn=false",
        "train.to_static=false", f"train.dtype={dtype}", f"model.pretrained={init}", "model.pretrained_prefix=''",
        "model.pretrained_strict=true", "train.final_checkpoint=false", "train.epochs=null",
        f"train.iters={total_iters}"]
    overrides += [f"loss.{key}={json.dumps(value)}" for key, value in (loss_kwargs or {}).items()]
    if evals:
        interval = max(1, total_iters // evals)
        overrides += ["train.eval_at_end=true",
                      f"train.eval_interval={interval}" if interval < total_iters else "train.eval_interval=null"]
    else:
        overrides += ["train.eval_at_end=false", "train.eval_interval=null"]
    cfg = load_run_config(str(REPO / spec.config), overrides)
    trainer = Trainer(cfg, work, progress=False)
    for handler in trainer.log.handlers:  # train.log keeps everything; the console only warnings
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    dropouts = _disable_paddle_dropout(trainer.model) if dtype == "float64" else 0
    start = time.perf_counter()
    summary = trainer.train()
    seconds = time.perf_counter() - start
    records = [r for r in trainer.history if r["type"] == "train"]
    evals_seen = [(r["iter"], r["metrics"].get(spec.metric)) for r in trainer.history if r["type"] == "eval"]
    params = {n: p.numpy().copy() for n, p in trainer.model.named_parameters()}
    # BatchNorm statistics are not buffers in Paddle (non-trainable parameters): read them from the state dict
    buffers = {n: v.numpy().copy() for n, v in trainer.model.state_dict().items()
               if n.endswith(("._mean", "._variance"))}
    return {"losses": [r["losses"] for r in records], "lr": [r["lr"] for r in records],
            "evals": evals_seen, "final": evals_seen[-1][1] if evals_seen else None, "params": params,
            "buffers": buffers, "seconds": seconds, "iterations": summary["iteration"],
            "iters_per_epoch": trainer.iters_per_epoch, "dropouts_disabled": dropouts}


def run_torch(spec: ConvergenceSpec, size: ConvergenceSize, root: str, seed: int, dtype: str, model: Any,
              total_iters: int, evals: int, term_names: Sequence[str], shuffle: bool, drop_last: bool,
              loss_kwargs: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """The official script of the paper (``torch_ref.engine.train``) on the same data and weights."""
    import torch

    from torch_ref.engine import train as official

    dropouts = official.disable_dropout(model) if dtype == "float64" else 0
    recipe = official.RECIPES[spec.recipe](model, total_iters, float32_coefficients=dtype == "float64",
                                           loss_kwargs=loss_kwargs)
    load, count, num_inputs = torch_train_data(spec, size, root)
    samples = torch_val_samples(spec, root) if evals else []
    interval = max(1, total_iters // evals) if evals > 1 else total_iters
    evals_seen: List[Tuple[int, float]] = []

    def after_iteration(iteration: int) -> None:  # the Paddle trainer's schedule: every interval, and the end
        if evals and (iteration % interval == 0 or iteration == total_iters):
            evals_seen.append((iteration, torch_evaluate(spec, size, model, samples)))
            model.train()

    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    start = time.perf_counter()
    run = official.train_official(model, recipe, load, count, size.batch_size, total_iters, seed, num_inputs,
                                  shuffle=shuffle, drop_last=drop_last, dtype=torch_dtype, term_names=term_names,
                                  after_iteration=after_iteration)
    seconds = time.perf_counter() - start
    from paddle_models.convert import torch_key_to_paddle

    params = {torch_key_to_paddle(n): p.detach().numpy().copy() for n, p in model.named_parameters()}
    buffers = {torch_key_to_paddle(n): b.detach().numpy().copy() for n, b in model.named_buffers()
               if torch_key_to_paddle(n) is not None}
    return {"losses": run["losses"], "lr": run["lr"], "evals": evals_seen,
            "final": evals_seen[-1][1] if evals_seen else None, "params": params, "buffers": buffers,
            "seconds": seconds, "dropouts_disabled": dropouts}


def total_iterations(spec: ConvergenceSpec, size: ConvergenceSize, root: str, drop_last: bool) -> int:
    kind, length = size.length
    if kind == "iters":
        return int(length)
    _, count, _ = torch_train_data(spec, size, root)
    per_epoch = count // size.batch_size if drop_last else math.ceil(count / size.batch_size)
    return int(length) * per_epoch


def loader_flags(spec: ConvergenceSpec) -> Tuple[bool, bool, List[str]]:
    """(shuffle, drop_last, term names) of the paper config's training loader and task."""
    from rsrepro.config import load_config

    cfg = load_config(str(REPO / spec.config), check=False)
    train = cfg.get("train", {})
    return (bool(train.get("shuffle", True)), bool(train.get("drop_last", True)),
            list((cfg.get("task") or {}).get("output_names") or []))


@contextlib.contextmanager
def scratch_dir(prefix: str):
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    path = tempfile.mkdtemp(prefix=prefix, dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def relative_max(a: np.ndarray, ref: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / (np.abs(ref).max() or 1.0))


CHAOS_PERTURBATION = 1e-15
SIDES = ("paddle", "torch", "floor")


def training_run(case: AlignCase, size_name: str, root: str, dtype: str, side: str, seed: int = 0) -> Dict[str, Any]:
    """One training run of ``case`` on the generated data at ``root``.

    ``dtype`` "float32": the shortened recipe with its evaluations, for ``seed``; the final parameters are
    dropped. "float64": ``float64_iters`` iterations at the float64 batch / crop, no evaluation, the loss
    options of ``spec.float64_loss``, parameters kept. ``side``: "paddle" (the Trainer), "torch" (the official
    loop) or "floor" (float64 only: torch from the initial weights x (1 + 1e-15), about one float64 rounding:
    how far the recipe itself carries a rounding-sized difference; two implementations of the same computation
    cannot be closer than this, whatever their kernels). Each run builds its own initial weights of ``seed``
    (deterministic), so runs are independent and may run in separate processes."""
    from rsrepro.config import load_config

    if side not in SIDES or (side == "floor" and dtype != "float64"):
        raise ValueError(f"training_run: side {side!r} with dtype {dtype!r}; sides are {SIDES}, 'floor' float64 only")
    spec = case.convergence
    size = spec.sizes[size_name].for_float64() if dtype == "float64" else spec.sizes[size_name]
    shuffle, drop_last, names = loader_flags(spec)
    cfg = load_config(str(REPO / spec.config), check=False)
    if dtype == "float64":
        total, evals, loss = size.float64_iters, 0, spec.float64_loss
    else:
        total, evals, loss = total_iterations(spec, size, root, drop_last), size.evals, None
    with scratch_dir(f"conv_{dtype}_{side}_") as tmp:
        init = os.path.join(tmp, "init.pdparams")
        torch_model = initial_weights(cfg, seed, dtype, init, case,
                                      perturb=CHAOS_PERTURBATION if side == "floor" else 0.0)
        if side == "paddle":
            run = run_paddle(spec, size, root, seed, dtype, init, os.path.join(tmp, "paddle"), total, evals,
                             loss_kwargs=loss)
        else:
            run = run_torch(spec, size, root, seed, dtype, torch_model, total, evals, names, shuffle, drop_last,
                            loss_kwargs=loss)
    if dtype == "float32":
        run.pop("params")
        run.pop("buffers")
    run["total_iters"] = total
    return run


@contextlib.contextmanager
def _environment(**values: str):
    """``os.environ`` with ``values`` set (spawned workers inherit it at start), restored afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _one_thread_worker() -> None:
    """Pool initializer: one math thread per run, so ``jobs`` runs share ``jobs`` cores without oversubscribing."""
    import torch
    from paddle.base.core import set_num_threads as set_math_threads

    torch.set_num_threads(1)
    set_math_threads(1)


def _worker_run(case_name: str, size_name: str, root: str, dtype: str, side: str, seed: int) -> Dict[str, Any]:
    from .cases import CASES

    return training_run(CASES[case_name], size_name, root, dtype, side, seed)


def training_runs(case: AlignCase, size_name: str, root: str, with_float64: bool = True, jobs: int = 1,
                  progress: Callable[[str], None] = print) -> Tuple[Dict[str, Any] | None, Dict[str, Any]]:
    """Every run of ``check_convergence`` for one case: the float64 runs (Paddle, torch, floor) when
    ``with_float64``, and per seed one float32 run per framework. ``jobs`` > 1 runs that many at a time in
    separate processes (spawned, one math thread each; longest first: Paddle float32, then float64, then
    torch float32); ``jobs`` = 1 runs them here, one after the other, with the caller's threads. The runs are
    independent (each builds its seed's initial weights), so the results do not depend on ``jobs``.
    Returns (float64 runs by side or None, {"runs": {"paddle": [...], "torch": [...]}, "total_iters": n})."""
    seeds = case.convergence.sizes[size_name].seeds
    tasks = [("float32", "paddle", seed) for seed in seeds]
    tasks += [("float64", side, 0) for side in SIDES] if with_float64 else []
    tasks += [("float32", "torch", seed) for seed in seeds]
    results: Dict[Tuple[str, str, int], Dict[str, Any]] = {}

    def report(task: Tuple[str, str, int], run: Dict[str, Any]) -> None:
        results[task] = run
        dtype, side, seed = task
        final = f"final {case.convergence.metric} {run['final']:.4f}, " if dtype == "float32" else ""
        progress(f"[convergence] {case.name} {size_name} {dtype} {side} seed {seed}: {final}{run['seconds']:.0f} s")

    if jobs <= 1:
        for task in sorted(tasks, key=lambda t: (t[0] != "float64", t[2], t[1])):  # float64 first, then by seed
            report(task, training_run(case, size_name, root, *task))
    else:
        import concurrent.futures
        import multiprocessing

        with _environment(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"), \
                concurrent.futures.ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread_worker,
                                                       mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_worker_run, case.name, size_name, root, *task): task for task in tasks}
            try:
                for future in concurrent.futures.as_completed(futures):
                    report(futures[future], future.result())
            except BaseException:  # a failed run fails the case now, not after the queued runs
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    float64 = {side: results[("float64", side, 0)] for side in SIDES} if with_float64 else None
    float32 = {"runs": {side: [results[("float32", side, seed)] for seed in seeds] for side in ("paddle", "torch")},
               "total_iters": results[("float32", "torch", seeds[0])]["total_iters"]}
    return float64, float32
