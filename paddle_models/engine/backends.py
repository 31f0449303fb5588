"""Deployment backends behind one interface: Paddle Inference, and the Paddle2ONNX model in ONNX Runtime or OpenVINO.

An exported folder (``tools/export.py``) holds ``inference.json`` + ``inference.pdiparams`` (Paddle 3.x PIR),
``deploy.yml`` and, with ``--format onnx``, ``model.onnx`` converted from the same program by Paddle2ONNX.
``create_backend(model_dir, backend, threads)`` returns an object whose ``run(inputs)`` takes the model inputs
(float32 N x 3 x H x W arrays, one per model input, preprocessed as deploy.yml says) and returns the one
output; every backend honours ``threads``:

- "paddle": Paddle Inference with oneDNN and the deployment pass list (``export.create_predictor``);
- "onnxruntime": CPU execution provider, ``intra_op_num_threads`` = threads, sequential;
- "openvino": the ONNX file compiled for the CPU with ``INFERENCE_NUM_THREADS`` = threads and
  ``INFERENCE_PRECISION_HINT`` f32: OpenVINO's default on CPUs with AVX512-BF16 is bfloat16, 1-2 % off
  (argmax changes) -- fast, but not the same model. OpenVINO cannot read the PIR ``.json`` itself. The model
  is compiled for each input shape it meets (fixed shapes run up to 25 % faster in its CPU plugin; the last
  ``OPENVINO_SHAPE_CACHE`` shapes are kept), so the first run at a new size includes a compilation;
- "auto": the fastest backend that passed the exactness check on this machine (``backends.json``, written
  by ``tools/export.py --check``), saying which and why; Paddle Inference when no check was recorded.

``check_backends`` runs each backend against dygraph on real-sized inputs: a backend is exact when its output
is within 1e-5 of dygraph's (max|diff| / max|dygraph|) AND no argmax (class maps, 2-class change logits) or
thresholded change pixel (change scores, at deploy.yml's threshold) differs where dygraph decides it (pixels
whose deciding margin is itself below 1e-5 x max|dygraph| are float32 ties, reported apart); the others are
refused.

Conversion (``convert_to_onnx``): Paddle2ONNX 2.1.0 reads some attributes that Paddle 3.3 writes as float64
(PR 75547) as float32. Two consequences are handled in the models / here: an interpolate with a
``scale_factor`` list does not convert ("the 0th elementwise MUST be ir::FloatAttribute"; FactSeg's FPN now
upsamples by an explicit size, bit-identical), and ``leaky_relu``'s slope converts to garbage without an error
(NaN or a denormal ``alpha``: ONNX Runtime returns NaN, OpenVINO refuses the file; DASNet-V2's decoder): every
LeakyRelu's ``alpha`` is rewritten from the Paddle program after conversion. Paddle2ONNX exits the process on a
failure, so it runs in a child process and its message comes back as a ``BackendError``. After conversion every
PRelu is rewritten, exactly, as Max(x, slope * x) (slopes <= 1) or Relu(x) + slope * Min(x, 0) (``decompose_prelu``:
ONNX Runtime's PRelu kernel is ~10x slower than those ops; ``convert_to_onnx(prelu="keep")`` leaves them).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Sequence

import numpy as np

from rsrepro.fileio import atomic_save, atomic_write_json

from .export import MODEL_FILE, PARAMS_FILE, create_predictor, load_deploy_info, run_predictor

__all__ = ["BACKEND_NAMES", "ONNX_FILE", "BACKENDS_FILE", "EXACT_REL", "BackendError", "Backend", "create_backend",
           "convert_to_onnx", "decompose_prelu", "check_backends", "exactness", "validate_inputs", "ort_session",
           "ort_session_options", "openvino_model", "read_openvino_model", "compile_openvino"]

BACKEND_NAMES = ("paddle", "onnxruntime", "openvino")
OPENVINO_SHAPE_CACHE = 4  # compiled shapes an OpenVINO backend keeps (each holds its own buffers)
ONNX_FILE = "model.onnx"
BACKENDS_FILE = "backends.json"
EXACT_REL = 1e-5
TRUTH_FACTOR = 3.0  # see exactness: a backend may round up to 3x as much as the model's own float32 forward
ONNX_OPSET = 17
_INSTALL_HINT = "install the pinned versions of requirements.txt (pip install -r requirements.txt)"


class BackendError(RuntimeError):
    """A backend cannot run this folder (missing file, package not installed, mismatched model, refused
    by the exactness check); the message names the file or value and what was expected."""


# --------------------------------------------------------------------------------------- inputs
def validate_inputs(info: Mapping[str, Any], inputs: Sequence[np.ndarray], where: str) -> List[np.ndarray]:
    """The inputs as contiguous float32, or a BackendError naming the input and what deploy.yml expects
    (count, rank, fixed dims, channels, ``size_divisor`` of H and W)."""
    specs = info.get("inputs") or []
    if len(inputs) != len(specs):
        raise BackendError(f"{where}: the model takes {len(specs)} input(s) "
                           f"({', '.join(s['name'] for s in specs)}), got {len(inputs)}")
    divisor = int(info.get("size_divisor") or 1)
    out = []
    for spec, array in zip(specs, inputs):
        array = np.ascontiguousarray(array, dtype=np.float32)
        shape = spec["shape"]
        if array.ndim != len(shape):
            raise BackendError(f"{where}: input {spec['name']} has shape {list(array.shape)}, expected "
                               f"{len(shape)} dims {shape} (None = any)")
        for axis, (want, got) in enumerate(zip(shape, array.shape)):
            if want is not None and int(want) != int(got):
                raise BackendError(f"{where}: input {spec['name']} has shape {list(array.shape)}, but the export is "
                                   f"fixed to {shape} (dim {axis} must be {want}; re-export with -1 for any size)")
        h, w = array.shape[-2:]
        if divisor > 1 and (h % divisor or w % divisor):
            raise BackendError(f"{where}: input {spec['name']} is {h}x{w}; this model needs height and width that "
                               f"are multiples of {divisor} (deploy.yml size_divisor; tools/infer.py pads images "
                               "to it)")
        out.append(array)
    return out


# ------------------------------------------------------------------------------------- backends
class Backend:
    """One exported model on one runtime. ``run(inputs) -> output``; ``describe()`` says how it was set up."""

    name = "backend"

    def __init__(self, model_dir: str, threads: int | None) -> None:
        self.model_dir = model_dir
        self.threads = threads
        self.info = load_deploy_info(model_dir)
        self.config: Dict[str, Any] = {"backend": self.name, "threads": threads}

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return self._run(validate_inputs(self.info, inputs, f"{self.model_dir} ({self.name})"))

    def _run(self, inputs: List[np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        return dict(self.config)


class PaddleBackend(Backend):
    """Paddle Inference (``export.create_predictor``: oneDNN with the deployment pass list by default)."""

    name = "paddle"

    def __init__(self, model_dir: str, threads: int | None, device: str = "cpu", onednn: str = "auto",
                 **predictor_kwargs: Any) -> None:
        super().__init__(model_dir, threads)
        self.predictor, config = create_predictor(model_dir, device, cpu_threads=threads, onednn=onednn,
                                                  **predictor_kwargs)
        self.config.update(config)

    def _run(self, inputs: List[np.ndarray]) -> np.ndarray:
        return run_predictor(self.predictor, inputs)


def _onnx_path(model_dir: str) -> str:
    path = os.path.join(model_dir, ONNX_FILE)
    if not os.path.isfile(path):
        raise BackendError(f"{path} not found: export with tools/export.py --format onnx first")
    return path


def _check_onnx_inputs(path: str, names: Sequence[str], shapes: Sequence[Sequence[Any]],
                       info: Mapping[str, Any]) -> None:
    """An ONNX file whose inputs are not deploy.yml's (names, rank, channels) belongs to another model."""
    expected = [s["name"] for s in info.get("inputs") or []]
    if list(names) != expected:
        raise BackendError(f"{path}: inputs {list(names)}, but {os.path.dirname(path)}/deploy.yml describes "
                           f"{expected}: the ONNX file of another model? (re-run tools/export.py --format onnx)")
    for name, shape, spec in zip(names, shapes, info["inputs"]):
        channels = spec["shape"][1] if len(spec["shape"]) > 1 else None
        got = shape[1] if len(shape) > 1 else None
        if len(shape) != len(spec["shape"]) or (isinstance(got, int) and channels is not None and got != channels):
            raise BackendError(f"{path}: input {name} has shape {list(shape)}, deploy.yml expects {spec['shape']}: "
                               "the ONNX file of another model?")


def ort_session_options(threads: int | None) -> Any:
    """The deployment's ONNX Runtime session options: ``threads`` intra-op threads, sequential, every graph
    optimisation (a caller may add to them, e.g. profiling)."""
    try:
        import onnxruntime as ort  # optional dependency of the deployment path
    except ImportError as exc:
        raise BackendError(f"backend onnxruntime: the package is not installed ({exc}); {_INSTALL_HINT}") from None
    ort.set_default_logger_severity(3)  # unused-initializer warnings of unfolded dynamic-shape exports
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or 0)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def ort_session(path: str, threads: int | None, options: Any = None) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads, sequential (the deployment setting);
    ``options``: session options to use instead (built by ``ort_session_options``)."""
    options = ort_session_options(threads) if options is None else options
    import onnxruntime as ort

    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a damaged / foreign file: the runtime's own exception types
        raise BackendError(f"{path}: onnxruntime cannot load it: {str(exc).splitlines()[0]}") from None


def read_openvino_model(path: str, check: Callable[[Any], None] | None = None) -> Any:
    """The ONNX file read by OpenVINO (``check(model)`` may refuse it)."""
    try:
        import openvino as ov  # optional dependency of the deployment path
    except ImportError as exc:
        raise BackendError(f"backend openvino: the package is not installed ({exc}); {_INSTALL_HINT}") from None
    try:
        model = ov.Core().read_model(path)
    except Exception as exc:
        raise BackendError(f"{path}: OpenVINO cannot read it: {str(exc).strip().splitlines()[0]}") from None
    if check is not None:
        check(model)
    return model


def compile_openvino(model: Any, threads: int | None, precision: str = "f32",
                     shapes: Sequence[Sequence[int]] | None = None) -> Any:
    """``model`` compiled for the CPU with ``threads`` and ``INFERENCE_PRECISION_HINT`` = ``precision`` (the
    default on AVX512-BF16 CPUs is bf16, not exact); with ``shapes`` (one per input) a copy fixed to those
    shapes: OpenVINO's CPU plugin runs a static-shape model faster (LSNet 256x256, 2 threads: 0.113 vs
    0.150 s; FactSeg 512x512: 0.279 vs 0.291 s; DANet / DASNet equal)."""
    import openvino as ov

    if shapes is not None:
        model = model.clone()
        model.reshape({port.get_any_name(): ov.PartialShape([int(d) for d in shape])
                       for port, shape in zip(model.inputs, shapes)})
    settings: Dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
    if threads:
        settings["INFERENCE_NUM_THREADS"] = int(threads)
    return ov.Core().compile_model(model, "CPU", settings)


def openvino_model(path: str, threads: int | None, precision: str = "f32", check: Callable[[Any], None] | None = None,
                   shapes: Sequence[Sequence[int]] | None = None) -> Any:
    """``read_openvino_model`` + ``compile_openvino``: the compiled model of the ONNX file."""
    return compile_openvino(read_openvino_model(path, check), threads, precision, shapes)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model_dir: str, threads: int | None) -> None:
        super().__init__(model_dir, threads)
        path = _onnx_path(model_dir)
        self.session = ort_session(path, threads)
        inputs = self.session.get_inputs()
        _check_onnx_inputs(path, [i.name for i in inputs], [i.shape for i in inputs], self.info)
        self.names = [i.name for i in inputs]
        import onnxruntime as ort

        self.config.update(file=ONNX_FILE, onnxruntime=ort.__version__, provider="CPUExecutionProvider",
                           intra_op_num_threads=int(threads or 0))

    def _run(self, inputs: List[np.ndarray]) -> np.ndarray:
        return self.session.run(None, dict(zip(self.names, inputs)))[0]


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, model_dir: str, threads: int | None, precision: str = "f32") -> None:
        super().__init__(model_dir, threads)
        path = _onnx_path(model_dir)

        def check(model: Any) -> None:
            names = [p.get_any_name() for p in model.inputs]
            shapes = [[d.get_length() if d.is_static else None for d in p.get_partial_shape()] for p in model.inputs]
            _check_onnx_inputs(path, names, shapes, self.info)

        self.model = read_openvino_model(path, check)
        self.precision = precision
        # compiled per input shape (static shapes run faster); a few shapes kept, least recently used dropped
        self.compiled: OrderedDict[tuple, Any] = OrderedDict()
        import openvino as ov

        self.config.update(file=ONNX_FILE, openvino=ov.__version__, device="CPU", precision=precision,
                           inference_num_threads=threads, shapes="static, compiled per input shape")

    def compiled_for(self, inputs: Sequence[np.ndarray]) -> Any:
        key = tuple(tuple(x.shape) for x in inputs)
        if key in self.compiled:
            self.compiled.move_to_end(key)
        else:
            self.compiled[key] = compile_openvino(self.model, self.threads, self.precision, list(key))
            while len(self.compiled) > OPENVINO_SHAPE_CACHE:
                self.compiled.popitem(last=False)
        return self.compiled[key]

    def _run(self, inputs: List[np.ndarray]) -> np.ndarray:
        compiled = self.compiled_for(inputs)
        return np.asarray(compiled(list(inputs))[compiled.outputs[0]])


def load_backend_record(model_dir: str) -> Dict[str, Any] | None:
    path = os.path.join(model_dir, BACKENDS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def choose_auto(model_dir: str, threads: int | None) -> tuple[str, str]:
    """(backend, reason) for "auto": the fastest exact backend of ``backends.json`` at the thread count
    closest to ``threads``."""
    record = load_backend_record(model_dir)
    if record is None:
        return "paddle", (f"no {BACKENDS_FILE} in {model_dir} (tools/export.py --check records which backends are "
                          "exact and how fast): Paddle Inference")
    runs = record.get("timings") or {}
    if not runs:
        return "paddle", f"{BACKENDS_FILE} records no timing: Paddle Inference"
    wanted = int(threads or os.cpu_count() or 1)
    key = min(runs, key=lambda k: abs(int(k) - wanted))
    exact = {b: r for b, r in record["backends"].items() if r.get("exact")}
    timed = {b: runs[key][b] for b in exact if runs[key].get(b) is not None}
    if not timed:
        return "paddle", f"no backend passed the exactness check in {BACKENDS_FILE}: Paddle Inference"
    best = min(timed, key=timed.get)
    others = ", ".join(f"{b} {s:.3f} s" for b, s in sorted(timed.items(), key=lambda kv: kv[1]) if b != best)
    refused = [b for b, r in record["backends"].items() if not r.get("exact")]
    node = record.get("machine", {}).get("node", "this machine")
    return best, (f"fastest exact backend at {key} thread(s) on {node}: "
                  f"{best} {timed[best]:.3f} s per run" + (f" (then {others})" if others else "")
                  + (f"; refused by the exactness check: {', '.join(refused)}" if refused else ""))


def create_backend(model_dir: str, backend: str = "auto", threads: int | None = None, device: str = "cpu",
                   onednn: str = "auto", **predictor_kwargs: Any) -> Backend:
    """The exported model in ``backend`` ("paddle", "onnxruntime", "openvino" or "auto"), with ``threads``
    CPU threads. A backend that ``backends.json`` records as refused by the exactness check is an error.
    ``backend.config["chosen_because"]`` says why "auto" picked what it did."""
    if not os.path.isdir(model_dir):
        raise BackendError(f"{model_dir}: no such folder (the output of tools/export.py)")
    reason = None
    if backend == "auto":
        backend, reason = choose_auto(model_dir, threads) if device == "cpu" else ("paddle", "GPU: Paddle Inference")
    if backend not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)} or auto")
    record = load_backend_record(model_dir)
    entry = (record or {}).get("backends", {}).get(backend)
    if entry is not None and not entry.get("exact"):
        raise BackendError(f"{model_dir}: backend {backend} was refused by the exactness check "
                           f"({entry.get('reason')}); see {BACKENDS_FILE}")
    if backend == "paddle":
        result: Backend = PaddleBackend(model_dir, threads, device=device, onednn=onednn, **predictor_kwargs)
    elif device != "cpu":
        raise BackendError(f"backend {backend} runs on the CPU here; use --backend paddle for --device {device}")
    elif backend == "onnxruntime":
        result = OnnxRuntimeBackend(model_dir, threads)
    else:
        result = OpenVINOBackend(model_dir, threads)
    if reason:
        result.config["chosen_because"] = reason
    return result


# ------------------------------------------------------------------------------------ conversion
def _leaky_relu_slopes(model_json: str) -> List[float]:
    """``negative_slope`` of every leaky_relu op of a Paddle 3.x PIR program, in program order."""
    with open(model_json, encoding="utf-8") as handle:
        program = json.load(handle)
    slopes: List[float] = []
    stack = [program]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if str(node.get("#", "")).endswith(".leaky_relu"):
                for attr in node.get("A", []):
                    if attr.get("N") == "negative_slope":
                        value = attr.get("AT", {})
                        slopes.append(float(value.get("D", value.get("F"))))
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return slopes


def _fix_leaky_relu(model: Any, slopes: Sequence[float], where: str) -> int:
    nodes = [n for n in model.graph.node if n.op_type == "LeakyRelu"]
    if not nodes:
        return 0
    if len(set(slopes)) == 1:
        slopes = [slopes[0]] * len(nodes)
    if len(slopes) != len(nodes):
        raise BackendError(f"{where}: {len(nodes)} LeakyRelu nodes but {len(slopes)} leaky_relu ops with different "
                           "slopes in the Paddle program: cannot restore their alpha")
    for node, slope in zip(nodes, slopes):
        for attr in node.attribute:
            if attr.name == "alpha":
                attr.f = float(slope)
    return len(nodes)


def decompose_prelu(model: Any) -> Dict[str, int]:
    """Rewrite every ``PRelu(x, slope)`` of ``model`` (in place) into ops ONNX Runtime runs faster, exactly;
    returns how many of each form were written.

    Why: ONNX Runtime 1.32's CPU PRelu is a generic broadcasting kernel, ~10x slower than the forms below on
    LSNet's tensors (1x32x128x128, 1 thread: PRelu 2.19 ms, four-op form 0.22 ms, two-op form 0.16 ms), and
    LSNet's 82 PReLUs were 43 % of its ONNX Runtime time (``benchmarks/ort_profile.py``). Forms:

    - ``Max(x, slope * x)`` when the slope is a constant with every value <= 1 (always so for the trained
      models here): for x >= 0, slope * x <= x, for x < 0, slope * x >= x, and rounding is monotonic, so Max
      returns x or the one product PRelu computes;
    - ``Relu(x) + slope * Min(x, 0)`` otherwise: x + slope * 0 = x for x >= 0, 0 + slope * x for x < 0.

    Both equal PRelu bit for bit except the sign of a zero result."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}

    def constant_values(name: str) -> np.ndarray | None:
        # a slope is an initializer or a Constant, possibly behind value-preserving reshapes (Paddle2ONNX)
        while name not in constants:
            node = producers.get(name)
            if node is None:
                return None
            if node.op_type == "Constant":
                return next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"), None)
            if node.op_type not in ("Reshape", "Unsqueeze", "Squeeze", "Identity", "Flatten"):
                return None
            name = node.input[0]
        return numpy_helper.to_array(constants[name])

    counts = {"max": 0, "relu_min": 0}
    rewritten: List[Any] = []
    zero_name = "decompose_prelu.zero"
    for index, node in enumerate(graph.node):
        if node.op_type != "PRelu":
            rewritten.append(node)
            continue
        x, slope = node.input[0], node.input[1]
        base = f"{node.name or 'prelu'}.{index}.decomposed"
        values = constant_values(slope)
        if values is not None and values.size and bool(np.all(values <= 1)):
            rewritten += [helper.make_node("Mul", [x, slope], [f"{base}.scaled"], name=f"{base}.mul"),
                          helper.make_node("Max", [x, f"{base}.scaled"], list(node.output), name=f"{base}.max")]
            counts["max"] += 1
            continue
        if not counts["relu_min"]:
            graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), zero_name))
        rewritten += [helper.make_node("Relu", [x], [f"{base}.positive"], name=f"{base}.relu"),
                      helper.make_node("Min", [x, zero_name], [f"{base}.negative"], name=f"{base}.min"),
                      helper.make_node("Mul", [f"{base}.negative", slope], [f"{base}.scaled"], name=f"{base}.mul"),
                      helper.make_node("Add", [f"{base}.positive", f"{base}.scaled"], list(node.output),
                                       name=f"{base}.add")]
        counts["relu_min"] += 1
    if any(counts.values()):
        del graph.node[:]
        graph.node.extend(rewritten)
    return counts


def convert_to_onnx(model_dir: str, opset: int = ONNX_OPSET, timeout: int = 1800,
                    prelu: str = "decompose") -> Dict[str, Any]:
    """Paddle2ONNX of the exported program in ``model_dir`` -> ``model.onnx`` (written atomically, checked with
    ``onnx.checker``). Returns what was done; a failure raises BackendError with Paddle2ONNX's message.
    ``prelu``: "decompose" (default) rewrites PRelu exactly into faster ops (``decompose_prelu``), "keep" leaves
    Paddle2ONNX's PRelu nodes."""
    if prelu not in ("decompose", "keep"):
        raise ValueError(f"prelu must be 'decompose' or 'keep', got {prelu!r}")
    model_file, params_file = (os.path.join(model_dir, MODEL_FILE), os.path.join(model_dir, PARAMS_FILE))
    for path in (model_file, params_file):
        if not os.path.isfile(path):
            raise BackendError(f"{path} not found: tools/export.py writes the Paddle model first")
    try:
        import onnx  # optional dependency of the deployment path
    except ImportError as exc:
        raise BackendError(f"--format onnx: onnx is not installed ({exc}); {_INSTALL_HINT}") from None
    target = os.path.join(model_dir, ONNX_FILE)
    raw = target + ".p2o.tmp"
    code = ("import sys, paddle2onnx\n"
            "paddle2onnx.export(sys.argv[1], sys.argv[2], sys.argv[3], opset_version=int(sys.argv[4]))\n")
    env = {**os.environ, "POLYGRAPHY_AUTOINSTALL_DEPS": "0", "GLOG_minloglevel": "2"}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code, model_file, params_file, raw, str(opset)],
                              capture_output=True, text=True, timeout=timeout, env=env)
        log = (done.stdout or "") + (done.stderr or "")
        if done.returncode != 0 or not os.path.isfile(raw) or os.path.getsize(raw) == 0:
            lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
            reason = next((ln for ln in lines if any(w in ln.lower() for w in ("error", "must be", "not support",
                                                                                   "no module"))), None)
            raise BackendError(f"{model_file}: Paddle2ONNX could not convert it: "
                               f"{reason or (lines[-1] if lines else f'exit code {done.returncode}')}")
        model = onnx.load(raw)
        fixed = _fix_leaky_relu(model, _leaky_relu_slopes(model_file), model_file)
        decomposed = decompose_prelu(model) if prelu == "decompose" else {}
        onnx.checker.check_model(model)
        atomic_save(target, lambda tmp: onnx.save(model, str(tmp)))
    finally:
        if os.path.exists(raw):
            os.remove(raw)
    import paddle2onnx

    return {"file": target, "opset": opset, "paddle2onnx": paddle2onnx.__version__, "onnx": onnx.__version__,
            "leaky_relu_alpha_restored": fixed, "prelu_decomposed": decomposed, "nodes": len(model.graph.node),
            "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------- exactness
def exactness(info: Mapping[str, Any], reference: np.ndarray, test: np.ndarray,
              truth: np.ndarray | None = None) -> Dict[str, Any]:
    """How ``test`` differs from dygraph's ``reference``, and whether that counts as the same model.

    Values: max|diff| / max|dygraph| <= 1e-5; or, for an output whose float32 rounding is larger than that in
    dygraph itself (DASNet's distance between two nearly equal unit embeddings), ``test`` at most 3x as far
    from the float64 ``truth`` (the same weights run in float64) as dygraph's float32 output is: a backend is
    not held to a precision the model does not have. Decisions: the same argmax of class scores / 2-class
    logits, the same labels, the same change pixels at deploy.yml's ``change.threshold`` (0.5 for a
    probability) -- counted where dygraph decides them: a pixel whose top-two scores (or score and threshold)
    are closer than the value bar is a float32 tie that any kernel may round either way (Paddle Inference
    against Paddle dygraph included), reported but not refused."""
    reference, test = np.asarray(reference), np.asarray(test)
    if reference.shape != test.shape:
        return {"exact": False, "reason": f"output shape {list(test.shape)} vs dygraph {list(reference.shape)}"}
    ref64, test64 = reference.astype(np.float64), test.astype(np.float64)
    if not np.isfinite(test64).all():
        return {"exact": False, "reason": f"{int((~np.isfinite(test64)).sum())} non-finite output values"}
    diff = np.abs(ref64 - test64)
    scale = float(np.abs(ref64).max()) or 1.0
    rel = float(diff.max() / scale)
    out: Dict[str, Any] = {"max_abs_diff": float(diff.max()), "max_rel_diff": rel}
    bar = EXACT_REL
    value_ok = rel <= EXACT_REL
    if truth is not None and np.issubdtype(reference.dtype, np.floating):
        truth64 = np.asarray(truth, np.float64)
        own = float(np.abs(ref64 - truth64).max() / (np.abs(truth64).max() or 1.0))
        mine = float(np.abs(test64 - truth64).max() / (np.abs(truth64).max() or 1.0))
        out.update(dygraph_float32_vs_float64=own, vs_float64=mine)
        if not value_ok and own > EXACT_REL / TRUTH_FACTOR:
            value_ok = mine <= TRUTH_FACTOR * own
            bar = max(bar, rel) if value_ok else bar
    tie = bar * scale
    reasons = []
    if not value_ok:
        reasons.append(f"max|diff| / max|dygraph| = {rel:.2e} > {EXACT_REL:g}"
                       + (f" and {out['vs_float64']:.2e} from float64, over {TRUTH_FACTOR:g} x dygraph's own "
                          f"{out['dygraph_float32_vs_float64']:.2e}" if "vs_float64" in out else ""))
    kind = info.get("output")
    flips = decided = None
    if kind == "label" or not np.issubdtype(reference.dtype, np.floating):
        flips = decided = reference != test
    elif reference.ndim == 4 and reference.shape[1] > 1:
        top2 = np.sort(ref64, axis=1)[:, -2:]
        flips = reference.argmax(1) != test.argmax(1)
        decided = flips & (top2[:, 1] - top2[:, 0] > tie)
    elif info.get("task") == "change_detection":
        change = info.get("change") or {}
        threshold = change.get("threshold")
        if threshold is None and change.get("score", "softmax") == "softmax":
            threshold = 0.5
        out["threshold"] = None if threshold is None else float(threshold)
        if threshold is not None:  # a distance without a configured threshold: only the value bar applies
            flips = (ref64 >= threshold) != (test64 >= threshold)
            decided = flips & (np.abs(ref64 - threshold) > tie)
    if flips is not None:
        out["decision_pixels_changed"] = int(flips.sum())
        out["decided_pixels_changed"] = int(decided.sum())
        if decided.any():
            reasons.append(f"{int(decided.sum())} pixel decision(s) differ (argmax / label / threshold)")
    out["exact"] = not reasons
    if reasons:
        out["reason"] = "; ".join(reasons)
    return out


def _median_seconds(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up: graph optimisation, first-shape allocation
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(statistics.median(times))


def check_backends(model_dir: str, inputs: Sequence[np.ndarray], reference: np.ndarray,
                   backends: Sequence[str] = BACKEND_NAMES, threads: Sequence[int] = (1,), runs: int = 3,
                   record: bool = True, truth: np.ndarray | None = None) -> Dict[str, Any]:
    """Run every backend on ``inputs`` against dygraph's ``reference`` output (``exactness``, with the float64
    run's ``truth``); time the exact ones (median of ``runs`` after a warm-up, at each
    thread count, side by side in this process). Writes ``backends.json`` (what ``create_backend("auto")``
    reads) when ``record``; returns the same dict."""
    info = load_deploy_info(model_dir)
    report: Dict[str, Any] = {"input_shapes": [list(np.shape(x)) for x in inputs], "exact_rel": EXACT_REL,

                              "backends": {}, "timings": {},
                              "machine": {"node": platform.node(), "processor": platform.processor() or
                                          platform.machine(), "cpu_count": os.cpu_count()}}
    instances: Dict[str, Dict[int, Backend]] = {}
    for name in backends:
        try:
            backend = create_backend_unchecked(model_dir, name, threads[0])
            out = backend.run(inputs)
        except BackendError as exc:
            report["backends"][name] = {"exact": False, "reason": str(exc)}
            continue
        except Exception as exc:  # a runtime failing on this model is a finding, reported per backend
            report["backends"][name] = {"exact": False, "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            continue
        report["backends"][name] = {**exactness(info, reference, out, truth), "config": backend.describe()}
        if report["backends"][name]["exact"]:
            instances[name] = {threads[0]: backend}
    for count in threads:
        row: Dict[str, float | None] = {}
        for name in instances:
            backend = instances[name].get(count) or create_backend_unchecked(model_dir, name, count)
            row[name] = _median_seconds(lambda b=backend: b.run(inputs), runs)
        report["timings"][str(count)] = row
    exact = [n for n, r in report["backends"].items() if r.get("exact")]
    if exact and report["timings"]:
        key = str(threads[-1])
        best = min(exact, key=lambda n: report["timings"][key].get(n) or float("inf"))
        report["auto"] = {"backend": best, "threads": int(key), "seconds": report["timings"][key][best]}
    if record:
        atomic_write_json(os.path.join(model_dir, BACKENDS_FILE), report)
    return report


def create_backend_unchecked(model_dir: str, name: str, threads: int | None) -> Backend:
    """A backend without consulting ``backends.json`` (the exactness check itself uses this)."""
    if name == "paddle":
        return PaddleBackend(model_dir, threads)
    if name == "onnxruntime":
        return OnnxRuntimeBackend(model_dir, threads)
    if name == "openvino":
        return OpenVINOBackend(model_dir, threads)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
