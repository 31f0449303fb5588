"""Static export (``paddle.jit.save``), Paddle Inference predictors, and the exported == dygraph check.

``export_model`` wraps the model in ``InferenceModel`` (one tensor out: logits, probabilities or
labels of the evaluated output, through the task's ``export_head``) and saves it with dynamic batch
and spatial dims by default. Paddle 3.x writes ``inference.json`` (PIR program) and
``inference.pdiparams``; ``deploy.yml`` beside them records what a deployment needs (task, inputs,
output kind, normalisation, class names, palette), so ``tools/infer.py`` needs only the folder.
Change detection on a CDD-style dataset records ``preprocess`` instead of ``normalize`` (DASNet: RGB
-> BGR minus a different mean for t0 and t1, no std; LSNet: raw pixels; ``tasks.apply_cd_preprocess``)
and ``change`` (score, decision, threshold of the config's eval section).
``size_divisor`` is what the model needs of the input height and width (FactSeg: 32, None for a model
that takes any size; :func:`required_size_divisor`): ``tools/infer.py`` zero-pads the normalised input at
the bottom/right to it and crops the output back. ``window`` (segmentation with ``eval.mode: slide`` and
``eval.window_rule: factseg``) is the evaluation's sliding-window protocol (window, stride, divisor,
0-255 mean / std, classes); ``tools/infer.py`` runs it through ``factseg_eval.FactSegSlidingWindow``
(streamed, as tools/eval.py), so deployed labels equal the evaluated ones and 13,000 px images fit.

DANet's forward reads ``x.shape`` (``b, c, h, w = x.shape`` in PAM/CAM, ``x.shape[2:]`` for the final
resize). Under Paddle 3.3's dy2static with PIR this traces with dynamic dims (-1) correctly: the model
exports unchanged with ``[None, 3, None, None]`` and the exported program matches dygraph at sizes other
than any traced one (tested), so no model change was needed.

The whole job of tools/export.py (build, load weights, export, convert, check) is ``engine.deploy``; the
ONNX Runtime / OpenVINO backends are ``engine.backends``.

``create_predictor`` builds a Paddle Inference predictor. CPU: math-library threads and oneDNN.
Paddle 3.3.1's full oneDNN pipeline (plain ``enable_mkldnn()``) fails on models with bilinear
interpolate ("ConvertPirAttribute2RuntimeAttribute not support ArrayAttribute<DoubleAttribute>", Paddle
issue 79749). With ``onednn="auto"`` (default) the predictor is built with oneDNN and the passes of
:data:`ONEDNN_DELETED_PASSES` deleted; the conv / fc fusion passes still put every convolution and fc on
oneDNN, the other ops run on Paddle's CPU kernels (outputs ~1e-6 relative to dygraph, see
``check_export``). If that predictor fails on a probe input, oneDNN is disabled and the reason logged.
GPU: ``enable_use_gpu`` and optional TensorRT (precision, workspace, dynamic shapes) for GPU users
(untested here: this machine has no GPU).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import paddle
import yaml
from paddle import inference

from rsrepro.config import public
from rsrepro.data import normalization_spec
from rsrepro.fileio import atomic_write_text

from .distributed import unwrap_model
from .scores import as_outputs
from .tasks import Task

__all__ = ["ONEDNN_DELETED_PASSES", "InferenceModel", "inference_model", "export_model",
           "create_predictor", "run_predictor", "check_export", "load_deploy_info", "required_size_divisor"]

log = logging.getLogger("paddle_rs.export")
MODEL_FILE = "inference.json"

#: Passes removed from Paddle Inference's oneDNN pipeline on the CPU deployment path (Paddle 3.3.1), and why.
#: Measured by ``benchmarks/speed.py`` (mode ``deploy``) and ``benchmarks/onednn_bisect_lsnet.py``.
ONEDNN_DELETED_PASSES: Dict[str, str] = {
    "onednn_placement_pass": "moves every op onto oneDNN kernels; its bilinear interpolate fails to run (Paddle "
                             "issue 79749)",
    "transfer_layout_pass": "rewrites some ops to NHWC on large inputs (LSNet's input pooling at 256x256); one op with "
                            "data_format NHWC makes Paddle treat the whole model as NHWC, so every oneDNN -> Paddle "
                            "layout conversion then returns NHWC data under NCHW shapes and the next batch_norm "
                            "fails ('the shape of scale must equal to [256]')",
}
PARAMS_FILE = "inference.pdiparams"


class InferenceModel(paddle.nn.Layer):
    """Model + task head: one tensor out (see ``Task.export_head``). Built by :func:`inference_model`
    (dy2static needs named arguments, so there is one subclass per number of inputs)."""

    def __init__(self, model: paddle.nn.Layer, task: Task, output: str = "logits") -> None:
        super().__init__()
        self.model = unwrap_model(model)
        self.task = task
        self.output = output

    def head(self, *inputs: paddle.Tensor) -> paddle.Tensor:
        return self.task.export_head(as_outputs(self.model(*inputs)), inputs, self.output)


class _OneInput(InferenceModel):
    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(x)


class _TwoInputs(InferenceModel):
    def forward(self, t0: paddle.Tensor, t1: paddle.Tensor) -> paddle.Tensor:
        return self.head(t0, t1)


def inference_model(model: paddle.nn.Layer, task: Task, output: str = "logits") -> InferenceModel:
    classes = {1: _OneInput, 2: _TwoInputs}
    if task.num_inputs not in classes:
        raise ValueError(f"export supports 1 or 2 inputs, task '{task.name}' has {task.num_inputs}")
    return classes[task.num_inputs](model, task, output)


def _input_specs(task: Task, shape: Sequence[int | None]) -> List[paddle.static.InputSpec]:
    names = ["x"] if task.num_inputs == 1 else [f"t{i}" for i in range(task.num_inputs)]
    return [paddle.static.InputSpec(list(shape), "float32", name) for name in names]


def export_model(model: paddle.nn.Layer, task: Task, out_dir: str,
                 input_shape: Sequence[int | None] = (None, 3, None, None), output: str = "logits",
                 cfg: Mapping[str, Any] | None = None, dataset: Any = None) -> Dict[str, Any]:
    """Save a static inference model to ``out_dir``; returns the paths and the deploy info."""
    wrapper = inference_model(model, task, output)
    wrapper.eval()
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, "inference")
    specs = _input_specs(task, input_shape)
    paddle.jit.save(wrapper, prefix, input_spec=specs)
    info = deploy_info(task, specs, output, cfg, dataset, size_divisor=required_size_divisor(model))
    atomic_write_text(os.path.join(out_dir, "deploy.yml"), yaml.safe_dump(info, sort_keys=False))
    model_file = os.path.join(out_dir, MODEL_FILE)
    if not os.path.isfile(model_file):  # Paddle < 3 writes .pdmodel
        model_file = prefix + ".pdmodel"
    return {"model_file": model_file, "params_file": prefix + ".pdiparams", "deploy": info, "dir": out_dir}


def required_size_divisor(model: paddle.nn.Layer) -> int | None:
    """What the model needs the input height and width to be multiples of: its ``size_divisor`` class
    attribute (FactSeg 32, LSNet 8), None for a model that takes any size."""
    declared = getattr(unwrap_model(model), "size_divisor", None)
    return int(declared) if declared else None


def _window_info(task: Task, normalize: Mapping[str, Any] | None, dataset: Any) -> Dict[str, Any] | None:
    """The FactSeg sliding-window protocol of the config's eval section (what ``task.build_evaluator``
    uses), or None when evaluation is not ``slide`` + ``window_rule: factseg``."""
    if task.name != "segmentation" or normalize is None:
        return None
    eval_cfg = task.cfg["eval"]
    if eval_cfg.get("mode") != "slide" or eval_cfg.get("window_rule") != "factseg":
        return None
    protocol = task.build_evaluator(dataset).protocol
    scale = float(normalize["scale"])

    def pair(value: Any) -> List[int]:
        return [int(v) for v in (value if isinstance(value, (list, tuple)) else (value, value))]

    # uint8 windows are normalised on the 0-255 scale, as the evaluator does for a raw val dataset
    return {"rule": "factseg", "window": pair(protocol.window), "stride": pair(protocol.stride),
            "size_divisor": int(protocol.size_divisor), "mean": [m * scale for m in normalize["mean"]],
            "std": [s * scale for s in normalize["std"]], "num_classes": int(protocol.num_classes)}


def deploy_info(task: Task, specs: Sequence[paddle.static.InputSpec], output: str,
                cfg: Mapping[str, Any] | None, dataset: Any, size_divisor: int | None = None) -> Dict[str, Any]:
    # (x / scale - mean) / std of the val pipeline: the config's val transforms for a dataset class,
    # the instance's own transform, or the class default (FactSeg: NormalizePixels, 0-255 scale).
    val_section = ((cfg or {}).get("dataset") or {}).get("val") or {}
    configured = val_section.get("transforms") if isinstance(dataset, type) and task.name == "segmentation" else None
    palette = getattr(dataset, "PALETTE", None)
    class_names = None
    if task.name == "segmentation":
        names = task.cfg["task"].get("class_names") or getattr(dataset, "CLASS_NAMES", None)
        class_names = list(names) if names is not None else None
    normalize = normalization_spec(dataset, configured)
    extra: Dict[str, Any] = {}
    if task.name == "change_detection":
        # CDD models are not ImageNet-normalised: DASNet subtracts a different BGR mean per time,
        # LSNet takes raw pixels. tools/infer.py applies "preprocess" when present.
        preprocess = task.preprocess_spec(dataset)
        if preprocess is not None:
            normalize = None
            extra["preprocess"] = preprocess
        e = task.cfg["eval"]
        extra["change"] = {"score": e.get("cd_score"), "decision": e.get("decision"),
                           "threshold": e.get("threshold")}
    return {
        "task": task.name,
        "inputs": [{"name": s.name, "shape": [None if d in (-1, None) else int(d) for d in s.shape],
                    "dtype": "float32"} for s in specs],
        "output": output,
        "normalize": normalize,
        "size_divisor": size_divisor,
        "window": _window_info(task, normalize, dataset),
        **extra,
        "class_names": class_names,
        "palette": [list(map(int, c)) for c in palette] if palette is not None else None,
        "model": public(cfg)["model"] if cfg is not None else None,
    }


def load_deploy_info(model_dir: str) -> Dict[str, Any]:
    path = os.path.join(model_dir, "deploy.yml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {model_dir} a folder written by tools/export.py?")
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _model_paths(model_dir: str) -> Tuple[str, str]:
    model_file = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isfile(model_file):
        model_file = os.path.join(model_dir, "inference.pdmodel")
    params_file = os.path.join(model_dir, PARAMS_FILE)
    for path in (model_file, params_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found (export with tools/export.py first)")
    return model_file, params_file


def _make_config(model_dir: str, device: str, cpu_threads: int | None, onednn: bool, deleted_passes: Sequence[str],
                 gpu_mem_mb: int, gpu_id: int, trt: bool, trt_precision: str, trt_workspace: int,
                 trt_min_subgraph: int, trt_shapes: Mapping[str, Sequence[Sequence[int]]] | None):
    model_file, params_file = _model_paths(model_dir)
    config = inference.Config(model_file, params_file)
    config.disable_glog_info()
    if device == "gpu":
        config.enable_use_gpu(int(gpu_mem_mb), int(gpu_id))
        if trt:
            precision = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half,
                         "int8": inference.PrecisionType.Int8}[trt_precision]
            config.enable_tensorrt_engine(workspace_size=int(trt_workspace), max_batch_size=1,
                                          min_subgraph_size=int(trt_min_subgraph), precision_mode=precision,
                                          use_static=False, use_calib_mode=trt_precision == "int8")
            if trt_shapes:
                config.set_trt_dynamic_shape_info({k: list(v[0]) for k, v in trt_shapes.items()},
                                                  {k: list(v[1]) for k, v in trt_shapes.items()},
                                                  {k: list(v[2]) for k, v in trt_shapes.items()})
    else:
        config.disable_gpu()
        if cpu_threads:
            config.set_cpu_math_library_num_threads(int(cpu_threads))
        if onednn:
            config.enable_mkldnn()
            for name in deleted_passes:
                config.delete_pass(name)
        else:
            config.disable_mkldnn()
    return config


def run_predictor(predictor: Any, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Feed numpy arrays (in input order), run, return the (single) output."""
    names = predictor.get_input_names()
    if len(names) != len(inputs):
        raise ValueError(f"the model takes {len(names)} input(s) {names}, got {len(inputs)}")
    for name, array in zip(names, inputs):
        handle = predictor.get_input_handle(name)
        array = np.ascontiguousarray(array, dtype=np.float32)
        handle.reshape(list(array.shape))
        handle.copy_from_cpu(array)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def _probe_inputs(info: Mapping[str, Any] | None, num_inputs: int, size: int = 64) -> List[np.ndarray]:
    shapes = [i["shape"] for i in info["inputs"]] if info else [[None, 3, None, None]] * num_inputs
    divisor = int((info or {}).get("size_divisor") or 1)
    size = -(-size // divisor) * divisor  # a size the model accepts
    rng = np.random.default_rng(0)
    return [rng.standard_normal([1 if i == 0 and d is None else (size if d is None else d)
                                 for i, d in enumerate(s)]).astype(np.float32) for s in shapes]


def create_predictor(model_dir: str, device: str = "cpu", cpu_threads: int | None = None, onednn: str = "auto",
                     gpu_mem_mb: int = 500, gpu_id: int = 0, trt: bool = False, trt_precision: str = "fp32",
                     trt_workspace: int = 1 << 30, trt_min_subgraph: int = 3,
                     trt_shapes: Mapping[str, Sequence[Sequence[int]]] | None = None) -> Tuple[Any, Dict[str, Any]]:
    """A Paddle Inference predictor for an exported folder, and a dict saying how it was configured.

    ``onednn``: "auto" (oneDNN with :data:`ONEDNN_DELETED_PASSES` deleted, falling back to plain CPU
    kernels with a logged reason if a probe run fails), "on" (same, without the fallback), "plain"
    (``enable_mkldnn()`` as is — fails on DANet with Paddle 3.3.1), "off".
    ``trt_shapes``: input name -> (min, max, optimal) shapes for TensorRT dynamic shapes.
    """
    if onednn not in ("auto", "on", "plain", "off"):
        raise ValueError(f"onednn must be auto, on, plain or off, got {onednn!r}")
    base = dict(device=device, cpu_threads=cpu_threads, gpu_mem_mb=gpu_mem_mb, gpu_id=gpu_id, trt=trt,
                trt_precision=trt_precision, trt_workspace=trt_workspace, trt_min_subgraph=trt_min_subgraph,
                trt_shapes=trt_shapes)
    info: Dict[str, Any] = {"device": device, "cpu_threads": cpu_threads, "tensorrt": trt if device == "gpu" else False}
    if device != "cpu" or onednn == "off":
        info["onednn"] = "off" if device == "cpu" else "n/a (GPU)"
        return inference.create_predictor(_make_config(model_dir, onednn=False, deleted_passes=(),
                                                       **base)), info
    deleted = tuple(ONEDNN_DELETED_PASSES) if onednn != "plain" else ()
    predictor = inference.create_predictor(_make_config(model_dir, onednn=True, deleted_passes=deleted, **base))
    info["onednn"] = f"on (deleted: {', '.join(deleted)})" if deleted else "on (all passes)"
    if onednn != "auto":
        return predictor, info
    try:
        deploy = load_deploy_info(model_dir) if os.path.isfile(os.path.join(model_dir, "deploy.yml")) else None
        run_predictor(predictor, _probe_inputs(deploy, len(predictor.get_input_names())))
    except Exception as exc:  # the predictor raises RuntimeError / OSError variants from C++
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning(f"oneDNN predictor failed on a probe input ({reason}); disabling oneDNN")
        info["onednn"] = f"off (fallback: {reason})"
        predictor = inference.create_predictor(_make_config(model_dir, onednn=False, deleted_passes=(),
                                                            **base))
    return predictor, info


def _diff(reference: np.ndarray, test: np.ndarray) -> Dict[str, float]:
    reference = np.asarray(reference)
    test = np.asarray(test)
    if reference.shape != test.shape:
        return {"shape_mismatch": f"{reference.shape} vs {test.shape}"}  # type: ignore[dict-item]
    ref64, test64 = reference.astype(np.float64), test.astype(np.float64)
    diff = np.abs(ref64 - test64)
    scale = float(np.abs(ref64).max()) or 1.0
    out = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
           "max_rel_diff": float(diff.max() / scale),
           "rel_l2": float(np.linalg.norm(ref64 - test64) / (np.linalg.norm(ref64) or 1.0))}
    if reference.ndim == 4 and reference.shape[1] > 1:
        out["argmax_agreement"] = float((reference.argmax(1) == test.argmax(1)).mean())
    return out


def check_export(model: paddle.nn.Layer, task: Task, model_dir: str, inputs: Sequence[np.ndarray],
                 output: str = "logits", predictors: Sequence[str] = ("off", "auto"),
                 cpu_threads: int | None = None) -> Dict[str, Any]:
    """Compare the exported model with dygraph on ``inputs`` (numpy, one array per model input).

    Runs ``paddle.jit.load`` and one Paddle Inference predictor per ``predictors`` entry (``onednn``
    modes of :func:`create_predictor`), and returns, for each, max/mean absolute difference, the max
    difference relative to max|dygraph|, relative L2 and (for class maps) argmax agreement, plus the
    run time. The dygraph reference is computed by the same ``InferenceModel`` wrapper in eval mode.
    """
    wrapper = inference_model(model, task, output)
    wrapper.eval()
    tensors = [paddle.to_tensor(np.asarray(x, dtype=np.float32)) for x in inputs]
    with paddle.no_grad():
        reference = wrapper(*tensors).numpy()
    report: Dict[str, Any] = {"input_shapes": [list(x.shape) for x in inputs], "output_shape": list(reference.shape)}
    loaded = paddle.jit.load(os.path.join(model_dir, "inference"))
    loaded.eval()
    start = time.perf_counter()
    with paddle.no_grad():
        jit_out = loaded(*tensors)
    report["jit_load"] = {**_diff(reference, np.asarray(jit_out.numpy())), "seconds": time.perf_counter() - start}
    for mode in predictors:
        try:
            predictor, info = create_predictor(model_dir, "cpu", cpu_threads=cpu_threads, onednn=mode)
            run_predictor(predictor, inputs)  # warm-up (graph optimisation on first run)
            start = time.perf_counter()
            out = run_predictor(predictor, inputs)
            report[f"predictor_onednn_{mode}"] = {**_diff(reference, out), "seconds": time.perf_counter() - start,
                                                  "config": info}
        except Exception as exc:  # report, do not hide: a failing mode is a finding
            report[f"predictor_onednn_{mode}"] = {"error": str(exc).strip().splitlines()[0]}
    return report
