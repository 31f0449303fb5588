"""Torch -> Paddle weight conversion.

``convert_state_dict(torch_state_dict, paddle_model)`` maps every torch key to the Paddle name of the
same tensor (BatchNorm ``running_mean``/``running_var`` -> ``_mean``/``_variance``,
``num_batches_tracked`` dropped), transposes ``nn.Linear`` weights (Paddle stores them [in, out];
detected by module type, not by name) and checks the result against the Paddle model: any
missing, unexpected or shape-mismatched key raises :class:`ConversionError` listing all of them.

``load_torch_checkpoint`` opens an official checkpoint safely (``weights_only=True``) and unwraps
the layouts the official repositories use ('state_dict', 'model', a DDP 'module.' prefix).

Loading an official checkpoint is a product feature (``engine.weights.load_weights``, ``tools/convert_weights.py``),
so the converter lives here, below the engine; ``alignment.convert`` re-exports it for the parity checks.
torch is imported only when a ``.pth`` file is read.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Dict, Iterable, List, Mapping, Set, Tuple

import numpy as np
from paddle import nn

_BN_RENAMES = (("running_mean", "_mean"), ("running_var", "_variance"))
_DROPPED_SUFFIXES = ("num_batches_tracked",)


class ConversionError(ValueError):
    """Raised when a checkpoint does not fit a model; the message lists every offending key."""


def _format_keys(title: str, keys: List[str], limit: int = 20) -> str:
    shown = "\n    ".join(keys[:limit])
    more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"  {title} ({len(keys)}):\n    {shown}{more}"


def torch_key_to_paddle(key: str) -> str | None:
    """The Paddle state-dict name of a torch state-dict key, or None for dropped buffers."""
    prefix, _, leaf = key.rpartition(".")
    if leaf in _DROPPED_SUFFIXES:
        return None
    for torch_name, paddle_name in _BN_RENAMES:
        if leaf == torch_name:
            leaf = paddle_name
    return f"{prefix}.{leaf}" if prefix else leaf


def paddle_linear_weight_keys(paddle_model) -> Set[str]:
    """State-dict keys of every ``paddle.nn.Linear`` weight in the model."""
    keys = set()
    for name, layer in paddle_model.named_sublayers(include_self=True):
        if isinstance(layer, nn.Linear):
            keys.add(f"{name}.weight" if name else "weight")
    return keys


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def convert_state_dict(torch_state_dict: Mapping[str, Any], paddle_model,
                       strict: bool = True) -> Dict[str, np.ndarray]:
    """Convert a torch state dict into arrays that ``paddle_model.set_state_dict`` accepts.

    With ``strict=False`` keys absent from the checkpoint are allowed (partial initialisation,
    e.g. an ImageNet backbone); unexpected and shape-mismatched keys always raise.
    """
    target = {k: (list(v.shape), v.dtype) for k, v in paddle_model.state_dict().items()}
    linear_keys = paddle_linear_weight_keys(paddle_model)
    converted: Dict[str, np.ndarray] = {}
    unexpected: List[str] = []
    mismatched: List[str] = []
    seen: Set[str] = set()
    for torch_key, value in torch_state_dict.items():
        key = torch_key_to_paddle(torch_key)
        if key is None:
            continue
        if key not in target:
            unexpected.append(torch_key)
            continue
        seen.add(key)
        array = _to_numpy(value)
        if key in linear_keys and array.ndim == 2:
            array = array.T
        shape, dtype = target[key]
        if list(array.shape) != shape:
            mismatched.append(f"{torch_key}: checkpoint {list(array.shape)} vs model {shape} ({key})")
            continue
        converted[key] = np.ascontiguousarray(array.astype(_numpy_dtype(dtype), copy=False))
    missing = [k for k in target if k not in seen] if strict else []
    if unexpected or mismatched or missing:
        parts = ["checkpoint does not match the model:"]
        if missing:
            parts.append(_format_keys("missing in checkpoint", missing))
        if unexpected:
            parts.append(_format_keys("unexpected in checkpoint", unexpected))
        if mismatched:
            parts.append(_format_keys("shape mismatch", mismatched))
        raise ConversionError("\n".join(parts))
    return converted


def _numpy_dtype(paddle_dtype) -> np.dtype:
    name = str(paddle_dtype).replace("paddle.", "")
    return np.dtype({"bfloat16": "float32"}.get(name, name))


def unwrap_checkpoint(obj: Any, source: str = "checkpoint") -> Dict[str, Any]:
    """Return the plain state dict inside the official wrappers.

    Accepts a plain state dict, ``{'state_dict': ...}`` (DANet, DASNet), ``{'model': ...}``
    (FactSeg), and strips a DDP ``module.`` prefix from every key.
    """
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"{source}: expected a state dict (or a dict with 'state_dict' / 'model'), "
            f"got {type(obj).__name__}")
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    non_tensor = [k for k, v in obj.items() if not hasattr(v, "shape")]
    if non_tensor:
        raise ConversionError(f"{source}: entries that are not tensors: {non_tensor[:10]}")
    return dict(obj)


def load_torch_checkpoint(path: str, trust_pickle: bool = False) -> Dict[str, Any]:
    """Load a ``.pth`` file with ``weights_only=True`` and unwrap it to a state dict.

    Whole pickled models (LSNet's official checkpoints) can run arbitrary code when unpickled;
    they are refused unless ``trust_pickle=True``.
    """
    import torch  # optional dependency: only needed to read .pth files

    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such checkpoint file")
    if os.path.getsize(path) == 0:
        raise ConversionError(f"{path}: the file is empty (0 bytes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        raise ConversionError(
            f"{path}: refused to unpickle (weights_only=True). The file holds more than tensors, "
            f"e.g. a whole pickled model, which can execute code when loaded. If you trust its "
            f"source, convert it once with tools/convert_weights.py --trust-pickle (trust_pickle=True "
            f"in Python) and use the .pdparams. Detail: {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ConversionError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if trust_pickle and hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    return unwrap_checkpoint(obj, source=path)


def split_prefix(state_dict: Mapping[str, Any], prefix: str) -> Tuple[Dict[str, Any], List[str]]:
    """Keys under ``prefix`` with the prefix removed, and the keys that were outside it."""
    inside = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    outside = [k for k in state_dict if not k.startswith(prefix)]
    return inside, outside


def find_sublayer_prefix(paddle_model, layer_type) -> str:
    """Dotted name (with trailing '.') of the first sublayer of ``layer_type`` (e.g. the ResNet)."""
    for name, layer in paddle_model.named_sublayers(include_self=True):
        if isinstance(layer, layer_type):
            return f"{name}." if name else ""
    raise ConversionError(f"{type(paddle_model).__name__} has no {layer_type.__name__} sublayer")


def iter_missing(keys: Iterable[str], loaded: Iterable[str]) -> List[str]:
    loaded_set = set(loaded)
    return [k for k in keys if k not in loaded_set]
