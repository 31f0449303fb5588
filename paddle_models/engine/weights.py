"""Weight files: reading Paddle files without running code from them, loading weights (Paddle or an
official torch checkpoint) into a model, saving weights atomically.

A leaf of the engine (it imports only ``distributed``): the builders, checkpoints, tools and
benchmarks load weights through :func:`load_weights`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping

import numpy as np
import paddle
from paddle.framework.io import _ndarray_to_tensor, _pack_loaded_dict, _parse_load_result

from rsrepro.dasnet import ablation_dropped_keys
from rsrepro.fileio import atomic_save
from rsrepro.safe_load import UntrustedPickleError, load_pickle, pickle_trusted, trusted_pickle

from ..convert import convert_state_dict, load_torch_checkpoint
from ..danet import DANetHead
from .distributed import unwrap_model

__all__ = ["CheckpointError", "WeightsError", "read_paddle_file", "load_weights", "load_trained_weights",
           "save_weights"]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the run it is loaded into."""


class WeightsError(CheckpointError, ValueError):
    """A weights file cannot be read or does not fit the model (:func:`load_weights`); also a
    ValueError, what load_weights raised before."""


def read_paddle_file(path: str, trust_pickle: bool | None = None) -> Any:
    """``paddle.load(path)`` for files written by ``paddle.save`` (``.pdparams``, ``.pdopt``, ``.pdckpt``)
    without running code from the file: unpickled by ``rsrepro.safe_load.load_pickle`` (refuses globals
    weight files never need unless ``trust_pickle``), then converted as ``paddle.load`` converts (Paddle
    3.3.1 ``paddle/framework/io.py``: arrays of a state dict and ``(name, ndarray)`` tuples become
    Tensors; the big-parameter slices of protocol-2/3 files are joined). tests/test_safe_load.py checks
    the result equals ``paddle.load`` on real files."""
    obj = load_pickle(path, trust_pickle)
    if not isinstance(obj, dict):
        return _parse_load_result(obj, False)
    obj = _pack_loaded_dict(obj)
    names = obj.pop("StructuredToParameterName@@", None)
    if names is None:  # not a Layer/optimizer state dict: our checkpoints, any other dict
        return _parse_load_result(obj, False)
    for key, name in names.items():
        if isinstance(obj.get(key), np.ndarray):
            obj[key] = _ndarray_to_tensor(obj[key], False)
            if getattr(obj[key], "name", ""):
                obj[key].name = name
    return obj


def _read_state(path: str) -> Dict[str, Any]:
    """The file's state dict (``{"__torch__": ...}`` for a torch file); pickles are trusted only inside
    ``rsrepro.safe_load.trusted_pickle`` (see load_weights)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.endswith((".pth", ".pt", ".pth.tar", ".tar")):
        return {"__torch__": load_torch_checkpoint(path, trust_pickle=pickle_trusted())}
    try:
        state = read_paddle_file(path)
    except UntrustedPickleError:
        raise
    except Exception as exc:  # a damaged file fails in pickle or numpy with many exception types
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise WeightsError(f"{path}: can not parse the file as weights written by paddle.save (truncated, or "
                           f"another format?): {type(exc).__name__}: {first}") from None
    if isinstance(state, dict) and "model" in state and "format" in state:  # a training checkpoint
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def load_weights(model: paddle.nn.Layer, path: str, prefix: str = "", strict: bool = True,
                 trust_pickle: bool | None = None) -> Dict[str, Any]:
    """Load Paddle weights (``.pdparams``, or a training ``.pdckpt``) or an official torch checkpoint
    (``.pth`` / ``.pth.tar``, converted by ``paddle_models.convert``) into ``model``.

    ``prefix`` is prepended to every checkpoint key (``pretrained.`` loads a bare ResNet into DANet's
    backbone). With ``strict`` every model key must be present; unexpected or mis-shaped keys always
    raise. A full checkpoint loads into an attention ablation (a DANet head whose PAM / CAM is an
    identity, the DASNet-V2 "without PAM / CAM" configs): exactly the keys
    ``rsrepro.dasnet.ablation_dropped_keys`` names are dropped and logged; any other misfit still
    raises. Returns ``{"loaded": n, "missing": [...], "dropped": [...]}``.

    Paddle files are unpickled without running code from them (``rsrepro.safe_load``): a file naming
    any other global raises ``UntrustedPickleError`` unless ``trust_pickle=True`` (``None``: trusted
    only inside ``rsrepro.safe_load.trusted_pickle()``, what the tools' ``--trust-pickle`` sets). A file
    that cannot be read or does not fit raises ``WeightsError`` (a CheckpointError and a ValueError)
    listing the missing, unexpected and mis-shaped keys separately.
    """
    with trusted_pickle(trust_pickle):
        state = _read_state(path)
    target = unwrap_model(model)
    if "__torch__" in state:
        torch_state = {prefix + k: v for k, v in state["__torch__"].items()}
        dropped = _ablation_dropped(target, torch_state, path)
        arrays = convert_state_dict({k: v for k, v in torch_state.items() if k not in dropped}, target,
                                    strict=strict)
    else:
        own = target.state_dict()
        arrays, unexpected, mismatched, misshaped = {}, [], [], set()
        dropped = _ablation_dropped(target, {prefix + k: v for k, v in state.items()}, path)
        for key, value in state.items():
            name = prefix + key
            if name in dropped:
                continue
            if name not in own:
                unexpected.append(key)
                continue
            value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
            if list(value.shape) != list(own[name].shape):
                mismatched.append(f"{key}: file {list(value.shape)} vs model {list(own[name].shape)}")
                misshaped.add(name)
                continue
            arrays[name] = value
        missing = [k for k in own if k not in arrays and k not in misshaped]  # each misfit listed once
        if unexpected or mismatched or (strict and missing):
            parts = [f"{path} does not fit the model:"]
            for title, keys in (("missing", missing if strict else []), ("unexpected", unexpected),
                                ("shape mismatch", mismatched)):
                if keys:
                    parts.append(f"  {title} ({len(keys)}): {', '.join(keys[:10])}"
                                 + (" ..." if len(keys) > 10 else ""))
            raise WeightsError("\n".join(parts))
    target.set_state_dict(arrays)
    return {"loaded": len(arrays), "missing": [k for k in target.state_dict() if k not in arrays],
            "dropped": sorted(dropped)}


def _ablation_dropped(model: paddle.nn.Layer, state: Mapping[str, Any], path: str) -> set[str]:
    """Checkpoint keys that the model's attention ablation removed (``rsrepro.dasnet.ablation_dropped_keys``
    for every DANet head whose PAM / CAM is an identity), logged when any are found."""
    dropped: List[str] = []
    for name, layer in model.named_sublayers():
        if isinstance(layer, DANetHead):
            use_pam = not isinstance(layer.sa, paddle.nn.Identity)
            use_cam = not isinstance(layer.sc, paddle.nn.Identity)
            if not (use_pam and use_cam):
                dropped += ablation_dropped_keys(state, use_pam, use_cam, head_prefix=name + ".")
    if dropped:
        logging.getLogger("paddle_rs.weights").warning(
            f"{path}: dropped {len(dropped)} key(s) of the attention modules this ablated model does not "
            f"have: {', '.join(sorted(dropped))}")
    return set(dropped)


def save_weights(path: str, model: paddle.nn.Layer) -> str:
    """Weights only (``.pdparams``), atomically."""
    state = unwrap_model(model).state_dict()
    return str(atomic_save(path, lambda tmp: paddle.save(state, tmp)))


def load_trained_weights(model: Any, path: str, trust_pickle: bool | None = None) -> Dict[str, Any]:
    """:func:`load_weights` for the tools and whole-run functions (evaluate, predict, export): a file that
    cannot be read or does not fit the model (its ValueErrors) becomes a CheckpointError naming ``path``
    (one message, exit 2 in ``cli.run_cli``); a file refused by the safe unpickler raises
    ``UntrustedPickleError`` (exit 2)."""
    try:
        return load_weights(model, path, trust_pickle=trust_pickle)
    except CheckpointError:
        raise
    except ValueError as exc:
        text = str(exc)
        raise CheckpointError(text if path in text else f"{path}: {text}") from None
