"""Dygraph training loop: config in, checkpoints, logs, evaluations and a best model out.

``Trainer(cfg, work_dir).train()`` (``tools/train.py`` is a thin CLI over it) does, in order:

1. data-parallel setup when started by ``python -m paddle.distributed.launch`` (``init_parallel_env``;
   SyncBatchNorm conversion on GPU only; ``paddle.DataParallel``; the same seed on every rank for the
   model initialisation, then ``seed + rank`` for the per-rank random streams);
2. datasets, the ``ResumableBatchSampler`` (a ``DistributedBatchSampler`` whose order is a function
   of ``(seed, epoch)`` and that can start in the middle of an epoch), model, loss, lr scheduler and
   optimizer (``engine.optim``), AMP (``auto_cast`` + ``GradScaler``, custom white/black op lists,
   ``decorate`` for O2; on a CPU Paddle ignores both and the run says it keeps float32);
3. ``--resume``: model, optimizer, scheduler, scaler, iteration, epoch, position in the epoch, best
   metric and every process's RNG state from the checkpoint, so the run continues exactly as if it
   had not stopped (bit for bit on CPU, tested);
4. the loop: scheduler stepped per iteration or per epoch (``lr_scheduler.by``); every
   ``log_interval`` iterations a log line (epoch, iter, every loss term, lr, batch cost, reader cost,
   ips, ETA) and VisualDL scalars; every ``eval_interval`` an evaluation (best model saved as
   ``best_model_epoch<E>_iter<I>.pdparams``); every ``save_interval`` an atomic checkpoint; a NaN/Inf
   loss, input or gradient (``train.nan_check``) stops the run BEFORE the weights are touched, naming the
   iteration, the loss terms and the last good checkpoint (which is kept);
5. at the end: final checkpoint, evaluation, ``loss_curve.png``, ``train_summary.json`` and one
   summary line.

Work dir layout: ``config.yml`` (resolved config), ``train.log``, ``history.jsonl`` (one JSON record per
log line / evaluation), ``vdl/`` (VisualDL), ``checkpoints/iter_*.pdckpt`` + ``latest.txt``,
``eval/iter_*.json`` (or ``eval/iter_*/metric.json`` + ``pr_curve.png`` for change detection),
``best_model_epoch*_iter*.pdparams`` + ``best_model.json``, ``loss_curve.png``, ``train_summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
import warnings
from typing import Any, Dict, List, Mapping

import numpy as np
import paddle
from tqdm import tqdm

from rsrepro.config import ConfigError, dump_config, public, source_of
from rsrepro.fileio import atomic_write_json, atomic_write_text, pause_point
from rsrepro.safe_load import trusted_pickle

from ..layers.resize import exact_float64_resize
from .builder import build_dataset, build_loss, build_model
from .checkpoint import (
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    resolve_checkpoint,
    restore_training_state,
    save_weights,
)
from .distributed import select_device, unwrap_model
from .optim import build_optimizer, build_scheduler
from .sampler import ResumableBatchSampler, epoch_indices
from .tasks import build_task
from .train_log import LogWindow, format_duration, make_logger, plot_history

__all__ = ["Trainer", "TrainingDivergedError", "ResumableBatchSampler", "epoch_indices", "plot_history",
           "select_device"]


class TrainingDivergedError(RuntimeError):
    """A loss term became NaN or Inf; the message says when and where the last good checkpoint is."""


_BAD_INPUTS = "__non_finite_inputs__"


def _count_non_finite(x: paddle.Tensor) -> int:
    """NaN/Inf values in a float tensor (0 for integer tensors)."""
    return int((~paddle.isfinite(x)).sum()) if paddle.is_floating_point(x) else 0


# ------------------------------------------------------------------------------------- trainer
class Trainer:
    """Config-driven trainer (module docstring).

    Args:
        cfg: a config from ``engine.builder.load_run_config``.
        work_dir: output folder (default: ``cfg.work_dir`` or ``output/<config name>``).
        resume: checkpoint file, or a folder whose ``checkpoints/latest.txt`` names one.
        amp: "O0" / "O1" / "O2" overriding ``train.amp.level``.
        device: "cpu" / "gpu" (default: gpu when available).
        progress: tqdm progress bars (auto-disabled when stdout is not a terminal).
        trust_pickle: read the ``resume`` checkpoint and ``model.pretrained`` with plain pickle
            (``rsrepro.safe_load``; only for files from a trusted source). False defers to an enclosing
            ``with rsrepro.safe_load.trusted_pickle():`` (restricted unpickler outside one).
    """

    def __init__(self, cfg: Mapping[str, Any], work_dir: str | None = None, resume: str | None = None,
                 amp: str | None = None, device: str | None = None, progress: bool = True,
                 trust_pickle: bool = False) -> None:
        self.cfg = cfg
        # None, not False: an explicit False would override an enclosing trusted_pickle() block
        self.trust_pickle: bool | None = True if trust_pickle else None
        self.train_cfg = cfg["train"]
        name = os.path.splitext(os.path.basename(cfg.get("_config_path", "run")))[0]
        self.work_dir = work_dir or cfg.get("work_dir") or os.path.join("output", name)
        self.progress = progress
        self.device = select_device(device)
        self.world = paddle.distributed.get_world_size()
        if self.world > 1:
            paddle.distributed.init_parallel_env()
        self.rank = paddle.distributed.get_rank()
        created = not os.path.exists(self.work_dir)
        os.makedirs(self.work_dir, exist_ok=True)
        self.log = make_logger(self.work_dir, self.rank)
        try:
            self.task = build_task(cfg)
            self._setup_data()
            self._check_schedule_length()
            self._setup_seeds_and_model()
            self._setup_optimization(amp)
            self.ckpt = CheckpointManager(os.path.join(self.work_dir, "checkpoints"),
                                          self.train_cfg["keep_checkpoints"])
            if self.rank == 0:
                for path in self.ckpt.remove_stale_temporaries():
                    self.log.warning(f"removed {path}: a checkpoint whose writing was interrupted (never "
                                     "renamed into place, so never a valid checkpoint)")
            self.iteration = 0
            self.epoch = 0
            self.batch_in_epoch = 0
            self.best: Dict[str, Any] = {"metric": self.best_metric, "value": None, "epoch": None,
                                         "iteration": None, "path": None}
            self.history: List[Dict[str, Any]] = []
            self.last_eval_iter: int | None = None
            if resume:
                self._resume(resume)
        except BaseException:
            self._remove_new_work_dir(created)
            raise
        self.vdl = self._visualdl()
        if self.rank == 0:
            atomic_write_text(os.path.join(self.work_dir, "config.yml"), dump_config(cfg))

    # ---- setup
    def _remove_new_work_dir(self, created: bool) -> None:
        """A run that fails before training (bad config / data) leaves no output: the work dir this
        constructor created holds only the log, which is closed and removed with it."""
        for handler in list(self.log.handlers):
            self.log.removeHandler(handler)
            handler.close()
        if created and self.rank == 0:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    @contextlib.contextmanager
    def _compute_dtype(self):
        """``train.dtype`` as Paddle's default dtype (parameters, tensors made inside the model and loss);
        float64 also resizes with exact float64 coordinates (``layers.resize.exact_float64_resize``:
        Paddle's bilinear kernel computes them in float32 even for float64 tensors)."""
        dtype = self.train_cfg["dtype"]
        previous = paddle.get_default_dtype()
        paddle.set_default_dtype(dtype)
        try:
            with exact_float64_resize(dtype == "float64"):
                yield
        finally:
            paddle.set_default_dtype(previous)

    def _setup_seeds_and_model(self) -> None:
        seed = int(self.train_cfg["seed"])
        random.seed(seed)
        np.random.seed(seed)
        paddle.seed(seed)
        with trusted_pickle(self.trust_pickle), self._compute_dtype():  # model.pretrained
            model = build_model(self.cfg)  # identical on every rank
        if self.world > 1 and self.device == "gpu" and self.train_cfg["sync_bn"]:
            model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.loss_fn = build_loss(self.cfg)
        if self.world > 1:  # distinct dropout / augmentation streams per rank
            random.seed(seed + self.rank)
            np.random.seed(seed + self.rank)
            paddle.seed(seed + self.rank)

    def _setup_data(self) -> None:
        tc = self.train_cfg
        if self.cfg["dataset"].get("train") is None:
            raise ConfigError(f"{self.cfg.get('_config_path')}: dataset.train is not configured")
        self.train_dataset = build_dataset(self.cfg, "train", seed=int(tc["seed"]))
        self.val_dataset = build_dataset(self.cfg, "val") if self.cfg["dataset"].get("val") else None
        self.sampler = ResumableBatchSampler(self.train_dataset, tc["batch_size"], num_replicas=self.world,
                                             rank=self.rank, shuffle=tc["shuffle"], drop_last=tc["drop_last"],
                                             seed=int(tc["seed"]))
        self.iters_per_epoch = len(self.sampler)
        if self.iters_per_epoch == 0:
            raise ConfigError(f"{source_of(self.cfg, 'train.batch_size')}: train.batch_size: the training set "
                              f"has {len(self.train_dataset)} samples, fewer than one batch of {tc['batch_size']} "
                              f"x {self.world} process(es) with drop_last")
        self.loader = paddle.io.DataLoader(self.train_dataset, batch_sampler=self.sampler,
                                           num_workers=tc["num_workers"], return_list=True)
        if tc["iters"] is not None:
            self.total_iters = int(tc["iters"])
        else:
            self.total_iters = int(tc["epochs"]) * self.iters_per_epoch
        self.evaluator = self.task.build_evaluator(self.val_dataset) if self.val_dataset is not None else None
        self.best_metric = tc["best_metric"] or self.task.best_metric

    def _schedule_steps(self) -> int:
        by = self.cfg["lr_scheduler"].get("by", "iter")
        return self.total_iters if by == "iter" else int(math.ceil(self.total_iters / self.iters_per_epoch))

    def _check_schedule_length(self) -> None:
        sched = self.cfg["lr_scheduler"]
        warmup = int(sched.get("warmup_iters", 0) or 0)
        steps = self._schedule_steps()
        if sched["type"] == "poly" and warmup >= steps:
            unit = "iterations" if sched.get("by", "iter") == "iter" else "epochs"
            raise ConfigError(f"{source_of(self.cfg, 'lr_scheduler.warmup_iters')}: lr_scheduler.warmup_iters: "
                              f"{warmup} warmup steps leave nothing of the {steps} {unit} of training "
                              "for the poly decay")

    def _setup_optimization(self, amp: str | None) -> None:
        tc = self.train_cfg
        self.scheduler = build_scheduler(self.cfg["lr_scheduler"], self._schedule_steps())
        self.optimizer = build_optimizer(self.cfg["optimizer"], self.model, self.scheduler)
        amp_cfg = tc["amp"]
        level = amp or amp_cfg["level"]
        self.amp_level = None if level in (None, "O0") else level
        self.amp_note = ""
        self.scaler = None
        if self.amp_level:
            if self.device == "cpu":
                self.amp_note = (f"AMP {self.amp_level} requested on CPU: Paddle's auto_cast and GradScaler have "
                                 "no effect there, training keeps float32")
                warnings.filterwarnings("ignore", message=".*can only be enabled on CUDAPlace.*")
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=amp_cfg["init_loss_scaling"],
                                                use_dynamic_loss_scaling=amp_cfg["use_dynamic_loss_scaling"])
            if self.amp_level == "O2":
                self.model, self.optimizer = paddle.amp.decorate(models=self.model, optimizers=self.optimizer,
                                                                 level="O2", dtype=amp_cfg["dtype"])
        if self.world > 1:
            self.model = paddle.DataParallel(self.model,
                                             find_unused_parameters=tc["find_unused_parameters"])
        self.forward_loss = self._build_forward_loss(bool(tc.get("to_static")))

    def _build_forward_loss(self, static: bool):
        """``(inputs, label) -> loss terms``. ``train.to_static`` traces forward + loss once into a static
        program (``paddle.jit.to_static``; backward and the optimizer step stay as in dygraph): Paddle's
        executor runs it with less per-op overhead and memory traffic than eager mode, which makes the
        CPU steps of DASNet and FactSeg much faster (README, Performance). Same kernels, so the losses
        equal the eager ones up to float32 rounding (tested), but dropout draws from the static program's
        own random stream, so a to_static run is not bit-identical to an eager one."""

        def forward_loss(inputs: List[paddle.Tensor], label: paddle.Tensor) -> Dict[str, paddle.Tensor]:
            # attributes read at call time: a replaced self.loss_fn (tests inject NaN losses) takes effect
            return self.task.loss_terms(self.loss_fn, self.task.forward(self.model, inputs), label)

        if not static:
            return forward_loss
        if self.amp_level:
            raise ValueError(f"train.to_static is not supported together with AMP ({self.amp_level}); "
                             "use one of them")
        if self.world > 1:
            raise ValueError("train.to_static is not supported with multi-process DataParallel "
                             f"({self.world} processes); run it in one process or without to_static")
        self.log.info("train.to_static: forward + loss run as a paddle.jit.to_static program")
        return paddle.jit.to_static(forward_loss, full_graph=True)

    def _autocast(self):
        if not self.amp_level:
            return contextlib.nullcontext()
        amp_cfg = self.train_cfg["amp"]
        return paddle.amp.auto_cast(level=self.amp_level, dtype=amp_cfg["dtype"],
                                    custom_white_list=set(amp_cfg["custom_white_list"]) or None,
                                    custom_black_list=set(amp_cfg["custom_black_list"]) or None)

    def _visualdl(self):
        if self.rank != 0:
            return None
        try:
            from visualdl import LogWriter
        except ImportError as exc:  # pragma: no cover - visualdl is a dependency
            self.log.warning(f"VisualDL unavailable ({exc}); no scalars written")
            return None
        return LogWriter(logdir=os.path.join(self.work_dir, "vdl"))

    def _resume(self, path: str) -> None:
        ckpt_path = resolve_checkpoint(path)
        ckpt = load_checkpoint(ckpt_path, trust_pickle=self.trust_pickle)
        state = restore_training_state(ckpt, self.model, self.optimizer, self.scheduler, self.scaler, self.rank)
        for key, now in (("iters_per_epoch", self.iters_per_epoch), ("world_size", self.world),
                         ("batch_size", self.train_cfg["batch_size"]), ("total_iters", self.total_iters)):
            if state.get(key) is not None and state[key] != now:
                self.log.warning(f"resume: {key} was {state[key]}, now {now} — the run will not continue "
                                 "exactly as the original would have")
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.best = dict(state.get("best") or self.best)
        self.last_eval_iter = state.get("last_eval_iter")
        self.history = self._load_history(upto=self.iteration)
        self.ckpt.last_path = ckpt_path
        self.log.info(f"resumed from {ckpt_path}: iteration {self.iteration}, epoch {self.epoch + 1}, "
                      f"batch {self.batch_in_epoch} of {self.iters_per_epoch}")

    def _load_history(self, upto: int) -> List[Dict[str, Any]]:
        path = os.path.join(self.work_dir, "history.jsonl")
        if not os.path.isfile(path):
            return []
        records = []
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if number < len(lines):  # only the last line can be cut short, by a kill while appending
                    raise CheckpointError(f"{path}:{number}: not a JSON record ({exc.msg})") from None
                self.log.warning(f"{path}:{number}: dropped a record cut short when the run was interrupted")
                continue
            if record.get("iter", 0) <= upto:  # records past the checkpoint came from the lost part
                records.append(record)
        if self.rank == 0:
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
        return records

    # ---- state
    def trainer_state(self) -> Dict[str, Any]:
        return {"iteration": self.iteration, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "best": dict(self.best), "last_eval_iter": self.last_eval_iter,
                "iters_per_epoch": self.iters_per_epoch, "world_size": self.world,
                "batch_size": self.train_cfg["batch_size"], "total_iters": self.total_iters}

    def _gather_rng(self) -> List[Dict[str, Any]]:
        state = capture_rng_state()
        if self.world <= 1:
            return [state]
        gathered: List[Dict[str, Any]] = []
        paddle.distributed.all_gather_object(gathered, state)
        return gathered

    def save_checkpoint(self) -> str | None:
        rng = self._gather_rng()  # every rank takes part in the gather
        if self.rank != 0:  # same path on every rank, so every rank agrees on what was saved
            self.ckpt.last_path = self.ckpt.path_for(self.iteration)
            return None
        path = self.ckpt.save(self.iteration, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                              scaler=self.scaler, trainer_state=self.trainer_state(), rng_states=rng,
                              config=public(self.cfg))
        self.log.info(f"saved checkpoint {path}")
        pause_point(f"after-checkpoint:{self.iteration}")
        return path

    def _record(self, record: Dict[str, Any]) -> None:
        self.history.append(record)
        if self.rank == 0:
            with open(os.path.join(self.work_dir, "history.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def epoch_of(self, iteration: int) -> int:
        """1-based epoch in which ``iteration`` (1-based) ran."""
        return (iteration - 1) // self.iters_per_epoch + 1 if iteration > 0 else 0

    # ---- one step
    def _all_reduce_mean(self, values: Dict[str, float]) -> Dict[str, float]:
        if self.world <= 1:
            return values
        vector = paddle.to_tensor(np.array(list(values.values()), dtype=np.float64))
        paddle.distributed.all_reduce(vector)
        return dict(zip(values, (vector.numpy() / self.world).tolist()))

    def train_step(self, batch: List[paddle.Tensor]) -> Dict[str, float]:
        inputs, label = self.task.split_batch(batch)
        dtype = self.train_cfg["dtype"]
        inputs = [x.astype(dtype) if paddle.is_floating_point(x) and x.dtype != getattr(paddle, dtype) else x
                  for x in inputs]
        check = self.train_cfg["nan_check"]
        with self._autocast():
            terms = self.forward_loss(inputs, label)
        values = {k: float(v) for k, v in terms.items()}
        if check:
            # Inputs are checked on their own: Paddle's CPU ReLU maps NaN to 0, so after a BatchNorm (whose
            # batch statistics a single NaN turns all-NaN) a non-finite input can give a FINITE loss.
            values[_BAD_INPUTS] = float(sum(_count_non_finite(x) for x in inputs))
        values = self._all_reduce_mean(values)  # the same decision on every rank
        bad_inputs = values.pop(_BAD_INPUTS, 0.0)
        if check and (bad_inputs or not all(math.isfinite(v) for v in values.values())):
            self._diverged(values, inputs)
        loss = terms["loss"]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()  # the scaler skips steps with non-finite gradients itself
            pause_point(f"mid-iter:{self.iteration + 1}")
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if check:
                bad = self._non_finite_gradients()
                if bad:
                    self._diverged(values, inputs, bad)
            pause_point(f"mid-iter:{self.iteration + 1}")
            self.optimizer.step()
        self.optimizer.clear_grad()
        if self.scheduler.step_unit == "iter":
            self.scheduler.step()
        return values

    def _non_finite_gradients(self) -> List[str]:
        """Parameters with a NaN/Inf gradient (one device sync for all of them). A finite loss can have
        them (e.g. sqrt at 0), and the NaN weights they make could then hide behind ReLUs."""
        named = [(n, p.grad) for n, p in unwrap_model(self.model).named_parameters() if p.grad is not None]
        if not named:
            return []
        flags = paddle.stack([paddle.isfinite(g).all() for _, g in named]).numpy()
        return [n for (n, _), ok in zip(named, flags) if not ok]

    def _diverged(self, values: Mapping[str, float], inputs: List[paddle.Tensor] | None = None,
                  bad_gradients: List[str] | None = None) -> None:
        it = self.iteration + 1
        terms = ", ".join(f"{k} {v:.6g}" for k, v in values.items())
        what = (f"non-finite gradient in {len(bad_gradients)} parameter(s), e.g. {bad_gradients[:3]}, with a "
                f"finite loss ({terms})" if bad_gradients else f"non-finite loss ({terms})")
        bad_inputs = [_count_non_finite(x) for x in inputs or []]
        if any(bad_inputs):
            what += (f"; the batch itself holds {sum(bad_inputs)} non-finite input value(s) "
                     f"(per input: {bad_inputs}) — check the data / preprocessing")
        if self.ckpt.last_path:
            last = (f"Last good checkpoint: {self.ckpt.last_path} (kept); resume with --resume "
                    f"{self.ckpt.last_path}, e.g. with a lower lr or without AMP.")
        else:
            last = (f"No checkpoint was saved before it (save_interval {self.train_cfg['save_interval']}); "
                    "nothing to resume from.")
        message = (f"training diverged at iteration {it} (epoch {self.epoch + 1}): {what}, "
                   f"lr {self.optimizer.get_lr():.6g}. Stopped before the optimizer step (the parameters are those "
                   f"of iteration {self.iteration}; BatchNorm statistics saw the failed batch). {last}")
        self.log.error(message)
        raise TrainingDivergedError(message)

    # ---- evaluation
    def evaluate(self, final: bool = False) -> Dict[str, Any] | None:
        if self.evaluator is None:
            return None
        ec = self.cfg["eval"]
        max_samples = None if final else self.train_cfg["eval_max_samples"]
        tag = f"iter_{self.iteration:08d}"
        kwargs = dict(batch_size=ec["batch_size"], num_workers=ec["num_workers"], max_samples=max_samples,
                      progress=self.progress)
        if self.task.name == "change_detection":
            kwargs["out_dir"] = os.path.join(self.work_dir, "eval", tag)
        result = self.evaluator.evaluate(self.model, self.val_dataset, **kwargs)
        scalars = self.evaluator.scalars(result)
        self.last_eval_iter = self.iteration
        if self.rank == 0:
            if self.task.name != "change_detection":
                atomic_write_json(os.path.join(self.work_dir, "eval", tag + ".json"), result)
            text = ", ".join(f"{k} {v:.4f}" for k, v in scalars.items())
            self.log.info(f"[eval] epoch {self.epoch_of(self.iteration)} iter {self.iteration}: {text} "
                          f"({result['samples']} samples, {result['seconds']:.1f} s)")
            if final or getattr(self.evaluator, "table_every_eval", False):  # FactSeg: per-class IoU each time
                self.log.info("\n" + self.evaluator.format(result))
            if self.vdl is not None:
                for key, value in scalars.items():
                    self.vdl.add_scalar(f"Eval/{key}", float(value), self.iteration)
        self._record({"type": "eval", "iter": self.iteration, "epoch": self.epoch_of(self.iteration),
                      "metrics": {k: float(v) for k, v in scalars.items()}})
        self._update_best(scalars)
        return result

    def _update_best(self, scalars: Mapping[str, float]) -> None:
        if self.best_metric not in scalars:
            if self.rank == 0:
                self.log.warning(f"best_metric '{self.best_metric}' is not among {sorted(scalars)}")
            return
        value = float(scalars[self.best_metric])
        if self.best["value"] is not None and value <= self.best["value"]:
            return
        epoch = self.epoch_of(self.iteration)
        path = os.path.join(self.work_dir, f"best_model_epoch{epoch}_iter{self.iteration}.pdparams")
        previous = self.best.get("path")
        self.best = {"metric": self.best_metric, "value": value, "epoch": epoch, "iteration": self.iteration,
                     "path": path}
        if self.rank == 0:
            save_weights(path, self.model)
            atomic_write_json(os.path.join(self.work_dir, "best_model.json"), self.best)
            if previous and previous != path and os.path.isfile(previous):
                os.remove(previous)
            self.log.info(f"new best {self.best_metric} {value:.4f} -> {path}")

    # ---- logging
    def _log_window(self, window: LogWindow) -> None:
        losses = window.losses()
        batch_cost, reader_cost, ips = window.batch_cost(), window.reader_cost(), window.ips(self.world)
        lr = float(self._lr_of_last_step)
        terms = " ".join(f"{k} {v:.4f}" for k, v in losses.items() if k != "loss")
        if self.rank == 0:
            self.log.info(f"[train] epoch {self.epoch_of(self.iteration)} iter {self.iteration}/{self.total_iters} "
                          f"loss {losses['loss']:.4f}" + (f" ({terms})" if terms else "")
                          + f" lr {lr:.6g} batch_cost {batch_cost:.3f}s reader_cost {reader_cost:.4f}s "
                          f"ips {ips:.2f} samples/s eta {window.eta(self.total_iters - self.iteration)}")
            if self.vdl is not None:
                for key, value in losses.items():
                    self.vdl.add_scalar("Train/loss" if key == "loss" else f"Train/loss_{key}", value, self.iteration)
                self.vdl.add_scalar("Train/lr", lr, self.iteration)
                self.vdl.add_scalar("Train/batch_cost", batch_cost, self.iteration)
                self.vdl.add_scalar("Train/reader_cost", reader_cost, self.iteration)
                self.vdl.add_scalar("Train/ips", ips, self.iteration)
        self._record({"type": "train", "iter": self.iteration, "epoch": self.epoch_of(self.iteration),
                      "losses": losses, "lr": lr, "batch_cost": batch_cost, "reader_cost": reader_cost,
                      "ips": ips})
        window.reset()

    def _check_replicas(self) -> bool | None:
        """Data parallel: every rank must hold the same trainable weights (a float64 fingerprint per rank).

        BatchNorm running statistics are left out: without SyncBatchNorm (always on CPU) each rank
        accumulates its own, and the checkpoint holds rank 0's."""
        if self.world <= 1:
            return None
        fingerprint = [float(np.abs(p.numpy().astype(np.float64)).sum())
                       for p in unwrap_model(self.model).parameters() if not p.stop_gradient]
        gathered: List[List[float]] = []
        paddle.distributed.all_gather_object(gathered, fingerprint)
        same = all(g == gathered[0] for g in gathered)
        if not same and self.rank == 0:
            self.log.warning("data-parallel replicas hold DIFFERENT weights at the end of training")
        return same

    # ---- main loop
    def train(self, stop_at: int | None = None) -> Dict[str, Any]:
        """Train to ``train.iters`` / ``epochs`` (or stop after iteration ``stop_at``, saving a checkpoint
        there, as if interrupted). Returns the summary written to ``train_summary.json``."""
        tc = self.train_cfg
        end = self.total_iters if stop_at is None else min(self.total_iters, int(stop_at))
        if self.rank == 0:
            params = sum(int(np.prod(p.shape)) for p in unwrap_model(self.model).parameters() if not p.stop_gradient)
            self.log.info(f"task {self.task.name}, model {self.cfg['model']['type']} ({params:,} trainable "
                          f"parameters), device {self.device}, {self.world} process(es) x batch {tc['batch_size']}, "
                          f"{len(self.train_dataset)} training samples, {self.iters_per_epoch} iters/epoch, "
                          f"{self.total_iters} iters, lr stepped per {self.scheduler.step_unit}, "
                          f"AMP {self.amp_level or 'off'}; work dir {self.work_dir}")
            if self.amp_note:
                self.log.info(self.amp_note)
        start_iter = self.iteration
        start_time = time.perf_counter()
        window = LogWindow()
        totals = {"reader": 0.0, "batch": 0.0}  # whole-run costs: is data loading the bottleneck?
        self._lr_of_last_step = self.optimizer.get_lr()
        bar = tqdm(total=end, initial=self.iteration, desc="train", dynamic_ncols=True, leave=False,
                   disable=not self.progress or self.rank != 0 or None)
        try:
            with self._compute_dtype():
                while self.iteration < end:
                    self.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch)
                    if hasattr(self.train_dataset, "set_epoch"):
                        self.train_dataset.set_epoch(self.epoch)
                    self.model.train()
                    t_read = time.perf_counter()
                    for batch in self.loader:
                        reader_cost = time.perf_counter() - t_read
                        self._lr_of_last_step = self.optimizer.get_lr()
                        values = self.train_step(batch)
                        self.iteration += 1
                        self.batch_in_epoch += 1
                        if self.batch_in_epoch == self.iters_per_epoch:
                            self.epoch += 1
                            self.batch_in_epoch = 0
                            if self.scheduler.step_unit == "epoch":
                                self.scheduler.step()
                        batch_cost = time.perf_counter() - t_read
                        totals["reader"] += reader_cost
                        totals["batch"] += batch_cost
                        window.add(values, batch_cost, reader_cost, int(batch[0].shape[0]))
                        bar.update(1)
                        if self.iteration % tc["log_interval"] == 0 or self.iteration == end:
                            self._log_window(window)
                        if tc["eval_interval"] and self.iteration % tc["eval_interval"] == 0 \
                                and self.iteration != self.total_iters:
                            self.evaluate()
                            self.model.train()
                        if tc["save_interval"] and self.iteration % tc["save_interval"] == 0 and self.iteration != end:
                            self.save_checkpoint()
                        t_read = time.perf_counter()
                        if self.iteration >= end:
                            break
        finally:
            bar.close()
        elapsed = time.perf_counter() - start_time
        finished_here = self.iteration >= self.total_iters
        if (not finished_here or tc["final_checkpoint"]) and (
                self.ckpt.last_path is None or not self.ckpt.last_path.endswith(f"iter_{self.iteration:08d}.pdckpt")):
            self.save_checkpoint()
        finished = self.iteration >= self.total_iters
        if finished and tc["eval_at_end"] and self.last_eval_iter != self.iteration:
            self.evaluate(final=True)
        replicas = self._check_replicas()
        summary = self._summary(start_iter, elapsed, finished, replicas)
        summary["reader_cost_seconds"] = totals["reader"]
        summary["batch_cost_seconds"] = totals["batch"]
        summary["reader_share"] = totals["reader"] / totals["batch"] if totals["batch"] > 0 else None
        if self.rank == 0:
            if finished and tc["plot"] and self.history:
                summary["loss_curve"] = plot_history(self.history, os.path.join(self.work_dir, "loss_curve.png"),
                                                     title=os.path.basename(self.work_dir))
            atomic_write_json(os.path.join(self.work_dir, "train_summary.json"), summary)
            self.log.info(summary["line"])
        if self.vdl is not None:
            self.vdl.close()
        return summary

    def _summary(self, start_iter: int, elapsed: float, finished: bool, replicas: bool | None) -> Dict[str, Any]:
        done = self.iteration - start_iter
        last_train = next((r for r in reversed(self.history) if r["type"] == "train"), None)
        final_loss = last_train["losses"]["loss"] if last_train else None
        best = self.best
        best_text = (f"best {best['metric']} {best['value']:.4f} at epoch {best['epoch']} iter {best['iteration']}"
                     if best.get("value") is not None else "no evaluation")
        line = (f"{'done' if finished else 'stopped'}: {done} iterations in {format_duration(elapsed)} "
                f"({elapsed / max(1, done):.3f} s/iter), iteration {self.iteration}/{self.total_iters}, "
                f"final loss {final_loss:.4f}, {best_text}; checkpoint {self.ckpt.last_path}"
                if final_loss is not None else
                f"{'done' if finished else 'stopped'} at iteration {self.iteration}/{self.total_iters}; "
                f"checkpoint {self.ckpt.last_path}")
        return {"line": line, "finished": finished, "iteration": self.iteration, "total_iters": self.total_iters,
                "epoch": self.epoch, "iterations_this_run": done, "seconds": elapsed, "final_loss": final_loss,
                "best": best, "checkpoint": self.ckpt.last_path, "world_size": self.world,
                "replicas_identical": replicas, "device": self.device, "amp": self.amp_level,
                "amp_note": self.amp_note or None, "work_dir": self.work_dir}
