"""The whole job of tools/export.py: build the config's model, load weights, export it for deployment (Paddle
program, optionally converted to ONNX), check every backend against dygraph, and record which are exact and how
fast. All or nothing: the folder is assembled next to ``out_dir`` and moved into place only when every step
succeeded; a refused export leaves ``out_dir`` as it was.

``--check`` inputs are real-sized (change detection 256 x 256 pairs, segmentation 512 x 512 unless given) random
uint8 pictures preprocessed exactly as deployment preprocesses them (deploy.yml), so each backend sees the value
ranges of real inputs (LSNet raw 0-255 pixels, DASNet BGR minus means).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Any, Callable, Dict, Iterator, List, Sequence

import numpy as np
import paddle

from rsrepro.data import DATASETS
from rsrepro.fileio import atomic_write_json
from rsrepro.safe_load import trusted_pickle

from ..layers.resize import exact_float64_resize
from .backends import BACKEND_NAMES, BackendError, check_backends, convert_to_onnx
from .builder import build_model
from .distributed import select_device
from .export import check_export, export_model, inference_model, load_deploy_info
from .infer import prepare_inputs
from .tasks import build_task
from .weights import load_trained_weights

__all__ = ["FORMATS", "DEFAULT_CHECK_SIZE", "check_inputs", "export_from_config", "float64_twin"]

FORMATS = ("paddle", "onnx")
DEFAULT_CHECK_SIZE = {"segmentation": (512, 512), "change_detection": (256, 256)}


def check_inputs(info: Dict[str, Any], size: Sequence[int], seed: int = 0) -> List[np.ndarray]:
    """Model inputs of random uint8 pictures of ``size`` (H, W), preprocessed as deploy.yml says."""
    rng = np.random.default_rng(seed)
    pictures = [rng.integers(0, 256, (int(size[0]), int(size[1]), 3), dtype=np.uint8) for _ in info["inputs"]]
    return prepare_inputs(pictures, info)


def _replace_dir(staging: str, out_dir: str) -> None:
    """Move ``staging`` to ``out_dir``; an existing ``out_dir`` is replaced only once the new one is in place."""
    old = None
    if os.path.exists(out_dir):
        old = f"{out_dir.rstrip(os.sep)}.replaced-{os.getpid()}"
        os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_from_config(cfg: Dict[str, Any], weights: str | None, out_dir: str,
                       input_shape: Sequence[int | None] | None = None, output: str | None = None,
                       check_size: Sequence[int] | None = None, cpu_threads: int | None = None,
                       trust_pickle: bool = False, fmt: str = "paddle", check: bool = False,
                       threads: Sequence[int] | None = None, runs: int = 3) -> Dict[str, Any]:
    """Export the config's model (``weights`` loaded) to ``out_dir``.

    ``fmt``: "paddle" (``inference.json`` + ``inference.pdiparams`` + ``deploy.yml``) or "onnx" (the same plus
    ``model.onnx`` from Paddle2ONNX). ``check`` (or a ``check_size`` H, W): run Paddle Inference, and with onnx
    ONNX Runtime and OpenVINO, against dygraph on real-sized inputs (``export_check.json``, ``backends.json``
    with the exactness and the timing at each of ``threads``, default 1 and every core); an export whose
    requested format has no exact backend is refused (BackendError, nothing written). ``trust_pickle``: read
    ``weights`` (and ``model.pretrained``) with plain pickle (``rsrepro.safe_load``). The CLI is tools/export.py.
    """
    if fmt not in FORMATS:
        raise BackendError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    select_device("cpu")
    task = build_task(cfg)
    with trusted_pickle(trust_pickle or None):
        model = build_model(cfg)
        if weights:
            load_trained_weights(model, weights)
    model.eval()
    shape = list(input_shape) if input_shape is not None else list(cfg["export"]["input_shape"])
    shape = [None if d is None or int(d) < 0 else int(d) for d in shape]
    output = output or cfg["export"]["output"]
    section = cfg["dataset"].get("val") or cfg["dataset"].get("train")
    dataset_meta = DATASETS.get(section["type"]) if section else None
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(os.path.abspath(out_dir))}.exporting-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        result = export_model(model, task, staging, shape, output, cfg, dataset_meta)
        if fmt == "onnx":
            result["onnx"] = convert_to_onnx(staging)
        if check or check_size:
            result["check"] = _check(model, task, staging, shape, output, fmt, check_size, cpu_threads, threads, runs)
        _replace_dir(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for key in ("model_file", "params_file"):
        result[key] = os.path.join(out_dir, os.path.basename(result[key]))
    result["dir"] = out_dir
    files = sorted(os.listdir(out_dir))
    print(f"exported to {out_dir}: {', '.join(files)}")
    if "onnx" in result:
        onnx_info = result["onnx"]
        rewrites = [f"{n} LeakyRelu alpha restored" for n in [onnx_info["leaky_relu_alpha_restored"]] if n]
        forms = {"max": "Max(x, slope*x)", "relu_min": "Relu(x) + slope*Min(x, 0)"}
        rewrites += [f"{n} PRelu -> {forms[form]}" for form, n in onnx_info["prelu_decomposed"].items() if n]
        print(f"model.onnx: Paddle2ONNX {onnx_info['paddle2onnx']}, opset {onnx_info['opset']}, "
              f"{onnx_info['nodes']} nodes" + (f"; exact rewrites: {', '.join(rewrites)}" if rewrites else ""))
    auto = result.get("check", {}).get("backends", {}).get("auto")
    if auto:
        print(f"fastest exact backend: {auto['backend']} ({auto['seconds']:.3f} s per run at {auto['threads']} "
              "thread(s); tools/infer.py --backend auto picks it)")
    return result


@contextlib.contextmanager
def float64_twin(model: paddle.nn.Layer, build: Callable[[], paddle.nn.Layer]) -> Iterator[paddle.nn.Layer]:
    """A float64 copy of ``model`` (``build()`` under float64 as the default dtype, the weights cast), in eval
    mode, used inside ``paddle.no_grad`` and exact float64 resizes: the truth float32 rounding is measured
    against (``backends.exactness``; ``benchmarks/speed.py``)."""
    previous = paddle.get_default_dtype()
    paddle.set_default_dtype("float64")
    try:
        twin = build()
        twin.set_state_dict({k: v.astype("float64") if paddle.is_floating_point(v) else v
                             for k, v in model.state_dict().items()})
        twin.eval()
        with paddle.no_grad(), exact_float64_resize():
            yield twin
    finally:
        paddle.set_default_dtype(previous)


def _float64_output(model: paddle.nn.Layer, task: Any, output: str, inputs: Sequence[np.ndarray],
                    reference: np.ndarray) -> np.ndarray | None:
    """The exported output computed in float64 (``float64_twin``). None for integer (label) outputs."""
    if not np.issubdtype(reference.dtype, np.floating):
        return None
    cfg = {**task.cfg, "model": {**task.cfg["model"], "pretrained": None}}
    with float64_twin(model, lambda: build_model(cfg)) as twin:
        wrapper = inference_model(twin, task, output)
        wrapper.eval()
        return wrapper(*[paddle.to_tensor(x.astype(np.float64)) for x in inputs]).numpy()


def _check(model: paddle.nn.Layer, task: Any, folder: str, shape: Sequence[int | None], output: str, fmt: str,
           check_size: Sequence[int] | None, cpu_threads: int | None, threads: Sequence[int] | None,
           runs: int) -> Dict[str, Any]:
    info = load_deploy_info(folder)
    if check_size:
        size = check_size
    elif all(shape[2:]):  # a fixed-size export runs at its own size
        size = shape[2:]
    else:
        size = DEFAULT_CHECK_SIZE[task.name]
    inputs = check_inputs(info, size)
    if shape[0]:
        inputs = [np.repeat(x, int(shape[0]), axis=0) for x in inputs]
    wrapper = inference_model(model, task, output)
    wrapper.eval()
    with paddle.no_grad():
        reference = wrapper(*[paddle.to_tensor(x) for x in inputs]).numpy()
    truth = _float64_output(model, task, output, inputs, reference)
    report = check_export(model, task, folder, inputs, output, cpu_threads=cpu_threads)
    atomic_write_json(os.path.join(folder, "export_check.json"), report)
    names = BACKEND_NAMES if fmt == "onnx" else ("paddle",)
    counts = list(threads) if threads else sorted({1, os.cpu_count() or 1})
    backends = check_backends(folder, inputs, reference, names, counts, runs, truth=truth)
    requested = [n for n in names if n != "paddle"] if fmt == "onnx" else ["paddle"]
    if not any(backends["backends"].get(n, {}).get("exact") for n in requested):
        reasons = "; ".join(f"{n}: {backends['backends'].get(n, {}).get('reason')}" for n in requested)
        raise BackendError(f"--check refused the {fmt} export (input {list(inputs[0].shape)}): {reasons}")
    print(json.dumps({n: {k: v for k, v in r.items() if k != "config"} for n, r in backends["backends"].items()},
                     indent=1, default=str))
    print(f"timings (median of {runs}, seconds): {json.dumps(backends['timings'])}")
    return {"export_check": report, "backends": backends}
