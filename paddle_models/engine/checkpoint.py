"""Training checkpoints: one atomically written file per save, and an exact resume.

A checkpoint (``<work_dir>/checkpoints/iter_00001000.pdckpt``, written with ``paddle.save`` through
``rsrepro.fileio.atomic_save``: a reader or a crash never leaves a half-written file) holds:

- ``model``: the model's state dict (parameters and BatchNorm statistics);
- ``optimizer``: the optimizer's accumulators keyed by STRUCTURED parameter name (see below), its
  master weights (AMP O2) and the lr scheduler state;
- ``scheduler``, ``scaler``: the lr scheduler and GradScaler state dicts;
- ``trainer``: iteration, epoch, batch index within the epoch, best metric so far, sizes of the run;
- ``rng``: python ``random``, numpy and Paddle generator states of EVERY process (gathered in
  data-parallel runs), so dropout masks and any other draw continue exactly;
- ``config``: the resolved run config.

Why structured names: Paddle's optimizer state dict is keyed by the accumulators' variable names
(``conv2d_3.w_0_velocity_0``), which come from process-global name counters. A model built in a
fresh process usually gets the same names, but not always (anything built before it shifts the
counters), and then ``set_state_dict`` would fail or, worse, pair the wrong tensors. Here each
accumulator is stored as ``<structured parameter name>|<accumulator kind>`` (``head.conv8.1.weight|
velocity``) and mapped back onto whatever names the new optimizer has.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import paddle

from rsrepro.fileio import atomic_save, atomic_write_text
from rsrepro.safe_load import UntrustedPickleError

from .distributed import unwrap_model
from .weights import CheckpointError, WeightsError, read_paddle_file, save_weights

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "WeightsError",
    "read_paddle_file",
    "capture_rng_state",
    "restore_rng_state",
    "optimizer_state",
    "load_optimizer_state",
    "save_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "restore_training_state",
    "save_weights",
    "CheckpointManager",
]

CHECKPOINT_FORMAT = 1
_COUNTER = re.compile(r"_\d+(?=_|$)")


# ------------------------------------------------------------------------------------------ RNG
def capture_rng_state() -> Dict[str, Any]:
    """Generator states of python ``random``, numpy and Paddle (CPU, and CUDA when compiled in)."""
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "paddle": paddle.get_rng_state(),
    }
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        state["paddle_cuda"] = paddle.get_cuda_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    paddle.set_rng_state(state["paddle"])
    if "paddle_cuda" in state and paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        paddle.set_cuda_rng_state(state["paddle_cuda"])


# ------------------------------------------------------------------------------------ optimizer
def _owner(var_name: str, param_names: List[str]) -> str | None:
    """The parameter (longest matching name) an accumulator / master weight belongs to."""
    for name in param_names:  # sorted longest first
        if var_name == name or var_name.startswith(name + "_"):
            return name
    return None


def _structured_names(model: paddle.nn.Layer) -> Tuple[Dict[str, str], List[str]]:
    by_var = {p.name: n for n, p in unwrap_model(model).named_parameters()}
    return by_var, sorted(by_var, key=len, reverse=True)


def optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer) -> Dict[str, Any]:
    """The optimizer state keyed by structured parameter names (module docstring)."""
    by_var, ordered = _structured_names(model)
    raw = optimizer.state_dict()
    out: Dict[str, Any] = {"accumulators": {}, "master_weights": {}}
    for key, value in raw.items():
        if key == "LR_Scheduler":
            out["lr_scheduler"] = value
        elif key == "master_weights":
            for var_name, tensor in value.items():
                owner = _owner(var_name, ordered)
                if owner is None:
                    raise CheckpointError(f"master weight {var_name} belongs to no model parameter")
                out["master_weights"][by_var[owner]] = tensor
        else:
            owner = _owner(key, ordered)
            if owner is None:
                raise CheckpointError(f"optimizer accumulator {key} belongs to no model parameter")
            kind = _COUNTER.sub("", key[len(owner) + 1:])
            out["accumulators"][f"{by_var[owner]}|{kind}"] = value
    return out


def load_optimizer_state(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer,
                         saved: Mapping[str, Any]) -> None:
    """Restore :func:`optimizer_state` into a freshly built optimizer of the same model.

    The accumulators are created first (Paddle creates them lazily at the first step), then each
    is filled from the saved tensor of the same parameter and kind. Every saved accumulator must
    find its place and every created one must be filled; otherwise CheckpointError lists them.
    """
    by_var, ordered = _structured_names(model)
    accumulators = saved.get("accumulators", {})
    if accumulators:
        # Only parameters that had state: Paddle creates accumulators lazily for parameters that get
        # gradients (DANet's unused ResNet fc never does).
        with_state = {key.split("|", 1)[0] for key in accumulators}
        params = [p for n, p in unwrap_model(model).named_parameters() if not p.stop_gradient and n in with_state]
        block = paddle.base.framework.default_main_program().global_block()
        optimizer._create_accumulators(block, params)
    if saved.get("master_weights"):  # AMP O2: float32 copies of the float16 parameters
        for param_name, master in getattr(optimizer, "_master_weights", {}).items():
            owner = _owner(param_name, ordered)
            structured = by_var[owner] if owner else param_name
            if structured not in saved["master_weights"]:
                raise CheckpointError(f"checkpoint has no master weight for {structured}")
            value = saved["master_weights"][structured]
            master.set_value(value.numpy() if hasattr(value, "numpy") else np.asarray(value))
    filled = set()
    unfilled: List[str] = []
    for per_param in optimizer._accumulators.values():
        for var_param_name, var in per_param.items():
            owner = _owner(var_param_name, ordered)
            kind = _COUNTER.sub("", var.name[len(owner) + 1:]) if owner else None
            key = f"{by_var[owner]}|{kind}" if owner else None
            if key is None or key not in accumulators:
                unfilled.append(var.name)
                continue
            value = accumulators[key]
            var.set_value(value.numpy() if hasattr(value, "numpy") else np.asarray(value))
            filled.add(key)
    leftover = sorted(set(accumulators) - filled)
    if unfilled or leftover:
        raise CheckpointError(
            "optimizer state does not fit the optimizer: "
            + (f"{len(unfilled)} accumulators without saved state (e.g. {unfilled[:3]}); " if unfilled else "")
            + (f"{len(leftover)} saved accumulators without a place (e.g. {leftover[:3]})" if leftover else "")
            + " — was the checkpoint written with another optimizer type or model?")
    if "lr_scheduler" in saved and hasattr(optimizer._learning_rate, "set_state_dict"):
        optimizer._learning_rate.set_state_dict(saved["lr_scheduler"])


# ----------------------------------------------------------------------------------- save/load
def save_checkpoint(path: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    scheduler: Any, scaler: Any, trainer_state: Mapping[str, Any],
                    rng_states: List[Dict[str, Any]] | None = None,
                    config: Mapping[str, Any] | None = None) -> str:
    """Write a checkpoint atomically (see the module docstring for its content)."""
    obj = {
        "format": CHECKPOINT_FORMAT,
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer_state(optimizer, model),
        "scheduler": scheduler.state_dict() if hasattr(scheduler, "state_dict") else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "trainer": dict(trainer_state),
        "rng": rng_states if rng_states is not None else [capture_rng_state()],
        "config": dict(config) if config is not None else None,
    }
    return str(atomic_save(path, lambda tmp: paddle.save(obj, tmp)))


def load_checkpoint(path: str, trust_pickle: bool | None = None) -> Dict[str, Any]:
    """Read a checkpoint file; errors say what is wrong with it. Globals a checkpoint never needs are
    refused (``UntrustedPickleError``) unless ``trust_pickle`` (``None``: ``rsrepro.safe_load.trusted_pickle``
    decides, off by default)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    try:
        obj = read_paddle_file(path, trust_pickle)
    except UntrustedPickleError:
        raise
    except Exception as exc:  # paddle raises a variety of types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a checkpoint?): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(obj, dict) or "format" not in obj or "trainer" not in obj:
        raise CheckpointError(f"{path} is not a training checkpoint (a weights-only .pdparams? use it "
                              "as model.pretrained, or with tools/eval.py --weights)")
    if obj["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {obj['format']}, this code reads {CHECKPOINT_FORMAT}")
    return obj


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file from a file, a ``checkpoints/`` folder or a work dir (-> its latest)."""
    if os.path.isfile(path):
        return path
    for folder in (path, os.path.join(path, "checkpoints")):
        pointer = os.path.join(folder, "latest.txt")
        if os.path.isfile(pointer):
            with open(pointer, encoding="utf-8") as handle:
                name = handle.read().strip()
            candidate = os.path.join(folder, name)
            if not os.path.isfile(candidate):
                raise CheckpointError(f"{pointer} names {name}, which does not exist")
            return candidate
    raise CheckpointError(f"--resume {path}: not a checkpoint file, and no checkpoints/latest.txt under it")


def restore_training_state(ckpt: Mapping[str, Any], model: paddle.nn.Layer,
                           optimizer: paddle.optimizer.Optimizer, scheduler: Any, scaler: Any,
                           rank: int = 0) -> Dict[str, Any]:
    """Put a checkpoint's model, optimizer, scheduler, scaler and RNG state back; return the trainer
    state (iteration, epoch, ...)."""
    target = unwrap_model(model)
    own = target.state_dict()
    missing = [k for k in own if k not in ckpt["model"]]
    unexpected = [k for k in ckpt["model"] if k not in own]
    # set_state_dict only WARNS on a shape mismatch and keeps the model's own tensor: check first.
    mismatched = [f"{k}: checkpoint {list(ckpt['model'][k].shape)} vs model {list(own[k].shape)}"
                  for k in own if k in ckpt["model"] and list(ckpt["model"][k].shape) != list(own[k].shape)]
    if missing or unexpected or mismatched:
        saved_model = ((ckpt.get("config") or {}).get("model") or {})
        origin = f" (it was written for model {saved_model})" if saved_model else ""
        parts = [f"{title} ({len(keys)}): {keys[:5]}" for title, keys in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)) if keys]
        raise CheckpointError(f"checkpoint model does not fit this model{origin}: " + "; ".join(parts)
                              + " — another model, backbone or num_classes?")
    target.set_state_dict(ckpt["model"])
    load_optimizer_state(optimizer, model, ckpt["optimizer"])
    if ckpt.get("scheduler") is not None and hasattr(scheduler, "set_state_dict"):
        scheduler.set_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    states = ckpt.get("rng") or []
    if states:
        restore_rng_state(states[rank] if rank < len(states) else states[0])
    return dict(ckpt["trainer"])


class CheckpointManager:
    """Periodic checkpoints in ``<work_dir>/checkpoints`` with ``latest.txt`` and rotation.

    ``keep`` newest checkpoints are kept (0 = all); older ones are removed only AFTER a new one has
    been written, so the last good checkpoint always survives a failure.
    """

    def __init__(self, folder: str, keep: int = 3) -> None:
        self.folder = folder
        self.keep = int(keep)
        self.last_path: str | None = None
        os.makedirs(folder, exist_ok=True)

    def path_for(self, iteration: int) -> str:
        return os.path.join(self.folder, f"iter_{iteration:08d}.pdckpt")

    def remove_stale_temporaries(self) -> List[str]:
        """Delete ``.iter_*.tmp-*.pdckpt`` / ``.latest.tmp-*.txt`` files: checkpoints (pointers) whose writer
        was killed before the rename (never valid: ``atomic_save`` renames only complete files). Returns
        their paths."""
        stale = [os.path.join(self.folder, n) for n in sorted(os.listdir(self.folder))
                 if re.fullmatch(r"\.iter_\d{8}\.tmp-[0-9a-f]+\.pdckpt|\.latest\.tmp-[0-9a-f]+\.txt", n)]
        for path in stale:
            os.remove(path)
        return stale

    def existing(self) -> List[str]:
        names = sorted(n for n in os.listdir(self.folder) if re.fullmatch(r"iter_\d{8}\.pdckpt", n))
        return [os.path.join(self.folder, n) for n in names]

    def save(self, iteration: int, **kwargs: Any) -> str:
        path = save_checkpoint(self.path_for(iteration), **kwargs)
        atomic_write_text(os.path.join(self.folder, "latest.txt"), os.path.basename(path) + "\n")
        self.last_path = path
        if self.keep > 0:
            for old in self.existing()[: -self.keep]:
                if old != path:
                    os.remove(old)
        return path
