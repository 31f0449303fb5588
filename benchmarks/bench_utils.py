"""Shared pieces of the benchmarks: thread setup, the per-model input table, twin model builders,
output flattening, the surrogate training loss, export to Paddle Inference, allocator detection.

Import this module BEFORE paddle or torch (``setup_threads`` must set the OpenMP/MKL variables
before either framework starts its thread pools).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks run as scripts, with only their own folder on the path
    sys.path.insert(0, str(ROOT))

from rsrepro.machine import cpu_name  # noqa: E402  (framework-free: safe before the thread setup)


def setup_threads(threads: int, frameworks: Sequence[str] = ("paddle", "torch")) -> None:
    """Same thread count in both frameworks: env for the OpenMP/MKL pools (read when the framework
    loads), then each framework's own setter. Only the listed frameworks are imported (a memory
    measurement of one framework must not carry the other's ~180 MB)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    os.environ.setdefault("GLOG_minloglevel", "2")
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(threads)
    if "paddle" in frameworks:
        import paddle

        paddle.set_device("cpu")
        paddle.base.core.set_num_threads(threads)


@dataclass(frozen=True)
class Case:
    """One benchmarked model: registry name, build kwargs, input shapes (full and --quick), and which of its
    distinct flattened outputs (``distinct``; negative = from the end) make the output ``tools/export.py``
    deploys (``deployed_output``): ("scores", i) class scores, ("distance", i, j) DASNet's embedding pair."""

    model: str
    kwargs: Dict[str, Any] = field(default_factory=dict)
    inputs: Tuple[Tuple[int, ...], ...] = ((1, 3, 512, 512),)
    quick_inputs: Tuple[Tuple[int, ...], ...] = ((1, 3, 64, 64),)
    deployed: Tuple[Any, ...] = ("scores", 0)


PAIR = ((1, 3, 256, 256), (1, 3, 256, 256))
QUICK_PAIR = ((1, 3, 64, 64), (1, 3, 64, 64))

# name -> case. Inputs are the stated sizes (DANet/FactSeg 1x3x512x512, change detection one
# 256x256 pair). A registered model missing here is reported as skipped, never silently dropped.
CASES: Dict[str, Case] = {
    "danet_r50": Case("danet", {"backbone": "resnet50"}),
    "danet_r101": Case("danet", {"backbone": "resnet101"}),
    # DASNet / V2: the saca pair (eval.output_index 2 of configs/_base_/cdd_dasnet.yml), distinct outputs 4, 5
    "dasnet": Case("dasnet", {}, PAIR, QUICK_PAIR, ("distance", 4, 5)),
    "dasnet_v2": Case("dasnet_v2", {}, PAIR, QUICK_PAIR, ("distance", 4, 5)),
    "lsnet": Case("lsnet", {}, PAIR, QUICK_PAIR, ("scores", -1)),  # the 2-class change logits
    "factseg": Case("factseg", {}),
}


def cases_for_registered(names: Sequence[str] | None = None) -> Tuple[Dict[str, Case], List[str]]:
    """The cases of registered models (optionally only ``names``) and the registered models without one."""
    import paddle_models

    registered = set(paddle_models.MODELS.names())
    chosen = {k: c for k, c in CASES.items() if c.model in registered and (not names or k in names)}
    if names:
        unknown = [n for n in names if n not in CASES]
        if unknown:
            raise SystemExit(f"unknown case(s) {unknown}; known: {sorted(CASES)}")
    covered = {c.model for c in CASES.values()}
    return chosen, sorted(registered - covered)


def build_twins(case: Case, seed: int = 0):
    """(torch model, paddle model) with the SAME weights (torch init converted to Paddle)."""
    import paddle
    import torch

    import paddle_models
    import torch_ref
    from paddle_models.convert import convert_state_dict

    torch.manual_seed(seed)
    torch_model = torch_ref.build_model(case.model, **case.kwargs)
    paddle_model = paddle_models.build_model(case.model, **case.kwargs)
    paddle_model.set_state_dict(convert_state_dict(torch_model.state_dict(), paddle_model))
    # gamma = 0 (the init) lets PAM/CAM skip nothing in compute but zeroes their effect; a nonzero
    # value makes the output comparisons below exercise the attention too.
    for model in (torch_model, paddle_model):
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                if isinstance(param, torch.Tensor):
                    with torch.no_grad():
                        param.fill_(0.5)
                else:
                    param.set_value(paddle.full(param.shape, 0.5, dtype=param.dtype))
    return torch_model, paddle_model


def float64_outputs(case: Case, paddle_model, arrays: Sequence[Any]) -> List[Any]:
    """The Paddle model's distinct flattened outputs computed in float64 (``engine.deploy.float64_twin``): the
    truth that ``engine.backends.exactness`` measures float32 rounding against."""
    import numpy as np
    import paddle

    import paddle_models
    from paddle_models.engine.deploy import float64_twin

    with float64_twin(paddle_model, lambda: paddle_models.build_model(case.model, **case.kwargs)) as twin:
        outs = distinct(flatten(twin(*[paddle.to_tensor(np.asarray(a, np.float64)) for a in arrays])))
        return [o.numpy() for o in outs]


def deployed_output(case: Case, outputs: Sequence[Any]):
    """What ``tools/export.py`` deploys, from the distinct flattened outputs (numpy): the class scores
    (``case.deployed = ("scores", i)``) or the DASNet change distance of the embedding pair i, j
    (``("distance", i, j)``: ``paddle_models.dasnet.change_distance``, at the embeddings' resolution -- the
    deployed score is that map resized, the same linear map for every backend)."""
    import numpy as np

    kind, *index = case.deployed
    if kind == "scores":
        return np.asarray(outputs[index[0]])
    import paddle

    from paddle_models.dasnet import change_distance

    pair = tuple(paddle.to_tensor(np.asarray(outputs[i])) for i in index)
    return change_distance((pair,), None, 0).numpy()


def deployment_exactness(case: Case, reference: Sequence[Any], test: Sequence[Any],
                         truth: Sequence[Any] | None = None) -> Dict[str, Any]:
    """The package's exactness verdict (``engine.backends.exactness``, the rule of ``tools/export.py --check``:
    max|diff| / max|dygraph| <= 1e-5, or within 3x dygraph's own float32 distance to the float64 ``truth``; no
    changed argmax of class scores) on the deployed output (``deployed_output``) of a deployment run against
    Paddle dygraph; ``max_rel_diff_any_output``: the largest max|diff| / max|dygraph| over every output, for
    information (auxiliary heads and embeddings are not what a deployment returns)."""
    import numpy as np

    from paddle_models.engine.backends import exactness

    if len(test) != len(reference) or any(np.shape(t) != np.shape(r) for t, r in zip(test, reference)):
        return {"exact": False, "reason": f"outputs {[list(np.shape(t)) for t in test]}, dygraph's "
                                          f"{[list(np.shape(r)) for r in reference]}"}
    verdict = exactness({}, deployed_output(case, reference), deployed_output(case, test),
                        None if truth is None else deployed_output(case, truth))
    verdict["max_rel_diff_any_output"] = max(
        float(np.abs(np.asarray(t, np.float64) - r).max() / (np.abs(r).max() or 1.0))
        for t, r in zip(test, reference))
    return verdict


def make_inputs(shapes: Sequence[Sequence[int]], seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(s)).astype("float32") for s in shapes]


def flatten(outputs: Any) -> List[Any]:
    """Nested tuples/lists/dicts of tensors -> flat list (model outputs differ in structure)."""
    if isinstance(outputs, (list, tuple)):
        return [t for o in outputs for t in flatten(o)]
    if isinstance(outputs, dict):
        return [t for k in sorted(outputs) for t in flatten(outputs[k])]
    return [outputs]


def distinct(outputs: Sequence[Any]) -> List[Any]:
    """The flattened outputs without repeats of the same tensor object, as an exported program lists them
    (LSNet returns one feature map twice, the official order; ``paddle.jit.save`` keeps it once)."""
    seen: set = set()
    return [o for o in outputs if not (id(o) in seen or seen.add(id(o)))]


def surrogate_loss(outputs: Any):
    """Sum over every output of mean(o^2): touches every output so backward covers the whole graph,
    and needs no task-specific labels (the timing is of forward + backward + optimizer, not of a loss)."""
    return sum(o.pow(2).mean() for o in flatten(outputs))


def allocator() -> str:
    """The malloc in use, from this process's mapped libraries (LD_PRELOAD of jemalloc/tcmalloc)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if name in maps:
            conf = os.environ.get("MALLOC_CONF", "")
            return f"{name}" + (f" (MALLOC_CONF={conf})" if conf else "")
    return "glibc malloc (no LD_PRELOAD allocator)"


def environment(threads: int) -> Dict[str, Any]:
    import paddle
    import torch

    return {"paddle": paddle.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "threads": threads, "cpu_count": os.cpu_count(), "cpu": cpu_name(), "allocator": allocator(),
            "load_average_at_start": list(os.getloadavg())}


def export_for_inference(paddle_model, shapes: Sequence[Sequence[int]], out_dir: str | None = None,
                         dynamic: bool = True) -> str:
    """``paddle.jit.save`` the model with ALL its outputs flattened (the same computation the eager
    runs do); returns the folder (inference.json + inference.pdiparams). ``dynamic``: batch, height and
    width saved as -1 like ``engine.export.export_model`` (the deployment default); otherwise fixed at
    ``shapes`` (Paddle's passes then see the sizes and may choose differently, e.g. transfer_layout_pass)."""
    import paddle

    wrapper = _wrapper(paddle_model, len(shapes))
    wrapper.eval()
    out_dir = out_dir or tempfile.mkdtemp(prefix="bench_export_")
    specs = [paddle.static.InputSpec([None, s[1], None, None] if dynamic else list(s), "float32", f"x{i}")
             for i, s in enumerate(shapes)]
    paddle.jit.save(wrapper, os.path.join(out_dir, "inference"), input_spec=specs)
    return out_dir


def export_torch_onnx(torch_model, t_in: Sequence[Any], path: str, dynamic: bool = True) -> List[str]:
    """The torch twin through ``torch.onnx.export`` (TorchScript exporter, opset 17, every output), the peer a
    PyTorch user deploys with; batch/height/width dynamic unless ``dynamic`` is False. Returns the input names."""
    import torch

    names = [f"x{i}" for i in range(len(t_in))]
    with torch.no_grad():
        outputs = flatten(torch_model(*t_in))
        axes = {n: {0: "batch", 2: "height", 3: "width"} for n in names} if dynamic else None
        torch.onnx.export(torch_model, tuple(t_in), path, dynamo=False, opset_version=17, input_names=names,
                          output_names=[f"out{i}" for i in range(len(outputs))], dynamic_axes=axes)
    return names


def _wrapper(model, num_inputs: int):
    import paddle

    class OneInput(paddle.nn.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x0):
            return flatten(self.inner(x0))

    class TwoInputs(OneInput):
        def forward(self, x0, x1):
            return flatten(self.inner(x0, x1))

    if num_inputs not in (1, 2):
        raise ValueError(f"benchmarks export 1 or 2 inputs, got {num_inputs}")
    return (OneInput if num_inputs == 1 else TwoInputs)(model)


def inference_config(model_dir: str, threads: int, onednn: str):
    """A Paddle Inference CPU config. ``onednn``: "off" (disable_mkldnn), "plain" (enable_mkldnn with
    every pass), "no_placement" (enable_mkldnn + delete_pass("onednn_placement_pass") only: the lead the
    performance issue started from), "deploy" (enable_mkldnn with the package's
    ``export.ONEDNN_DELETED_PASSES`` deleted: what ``create_predictor(onednn="auto")`` builds)."""
    from paddle import inference

    from paddle_models.engine.export import ONEDNN_DELETED_PASSES

    deleted = {"off": None, "plain": (), "no_placement": ("onednn_placement_pass",),
               "deploy": tuple(ONEDNN_DELETED_PASSES)}
    if onednn not in deleted:
        raise ValueError(f"onednn must be one of {sorted(deleted)}, got {onednn!r}")
    config = inference.Config(os.path.join(model_dir, "inference.json"), os.path.join(model_dir, "inference.pdiparams"))
    config.disable_gpu()
    config.disable_glog_info()
    config.set_cpu_math_library_num_threads(threads)
    if deleted[onednn] is None:
        config.disable_mkldnn()
    else:
        config.enable_mkldnn()
        for name in deleted[onednn]:
            config.delete_pass(name)
    return config


def run_all_outputs(predictor, inputs) -> List[Any]:
    import numpy as np

    for name, array in zip(predictor.get_input_names(), inputs):
        handle = predictor.get_input_handle(name)
        handle.reshape(list(array.shape))
        handle.copy_from_cpu(np.ascontiguousarray(array, dtype=np.float32))
    predictor.run()
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def rel_l2(test, reference) -> float:
    import numpy as np

    test, reference = np.asarray(test, np.float64), np.asarray(reference, np.float64)
    return float(np.linalg.norm(test - reference) / (np.linalg.norm(reference) or 1.0))
