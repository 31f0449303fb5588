"""Deployment through Paddle2ONNX: every model converts and runs exactly in ONNX Runtime and OpenVINO (small
sizes), the exactness check refuses inexact backends without leaving a half-written export, ``--backend auto``
picks the fastest exact one and says why, and bad inputs give one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import paddle
import pytest

from paddle_models.engine import backends as engine_backends
from paddle_models.engine.backends import BackendError, create_backend, exactness
from paddle_models.engine.cli import EXIT_CONFIG, run_cli
from paddle_models.engine.deploy import check_inputs, export_from_config
from paddle_models.engine.export import load_deploy_info
from paddle_models.engine.run_config import load_run_config

EMPTY = "dataset.train.root={root} dataset.val.root={root}"
# one config per model family (the synthetic demo configs where there is one: same model code, small inputs)
CONFIGS = {
    "lsnet": ("configs/lsnet/lsnet_diffFPN_synthetic_demo.yml", ["export.input_shape=[null, 3, null, null]"]),
    "factseg": ("configs/factseg/factseg_r50_synthetic.yml", []),
    "danet": ("configs/danet/danet_r50_synthetic_demo.yml", []),
    "dasnet_v2": ("configs/dasnet_v2/dasnet_v2_r50_synthetic_demo.yml", ["export.input_shape=[null, 3, null, null]"]),
    "dasnet": ("configs/dasnet/dasnet_r50_cdd_256_60e.yml", []),
}


@pytest.fixture(scope="module")
def empty_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("no_data"))


def _config(name, root):
    path, extra = CONFIGS[name]
    return load_run_config(path, EMPTY.format(root=root).split() + extra)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, empty_root):
    """Each model exported once as ONNX with --check at 64 x 64 (initial weights), shared by the tests."""
    cache = {}

    def get(name):
        if name not in cache:
            out = str(tmp_path_factory.mktemp(f"onnx_{name}") / "export")
            paddle.seed(0)
            result = export_from_config(_config(name, empty_root), None, out, fmt="onnx", check=True,
                                        check_size=(64, 64), threads=[1], runs=1)
            cache[name] = (out, result)
        return cache[name]

    yield get
    for out, _ in cache.values():
        shutil.rmtree(os.path.dirname(out), ignore_errors=True)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_model_converts_and_every_backend_is_exact(exports, name):
    out, result = exports(name)
    record = json.load(open(os.path.join(out, "backends.json")))
    for backend in ("paddle", "onnxruntime", "openvino"):
        entry = record["backends"][backend]
        assert entry["exact"], (backend, entry)
        if entry["max_rel_diff"] > 1e-5:  # an output whose own float32 rounding exceeds 1e-5 (DASNet distances)
            assert entry["vs_float64"] <= 3 * entry["dygraph_float32_vs_float64"], (backend, entry)
        assert entry.get("decided_pixels_changed", 0) == 0
    assert os.path.isfile(os.path.join(out, "model.onnx")) and result["onnx"]["opset"] == 17
    assert record["auto"]["backend"] in ("paddle", "onnxruntime", "openvino")
    assert set(record["timings"]["1"]) == {"paddle", "onnxruntime", "openvino"}
    if name == "dasnet_v2":  # its decoder's LeakyReLU slopes come out of Paddle2ONNX as garbage; restored
        assert result["onnx"]["leaky_relu_alpha_restored"] > 0
    if name == "lsnet":  # its PReLUs are rewritten for ONNX Runtime's speed (the two-op form: slopes <= 1)
        import onnx

        assert result["onnx"]["prelu_decomposed"]["max"] > 0
        graph = onnx.load(os.path.join(out, "model.onnx")).graph
        assert not [n for n in graph.node if n.op_type == "PRelu"]


def _prelu_graph(slope, slope_as_input=False):
    """x (1x4x5x6) -> PRelu(x, slope) with the slope an initializer behind a Reshape (as Paddle2ONNX writes it)
    or a graph input."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 6])
    if slope_as_input:
        inputs, inits, nodes = [x, helper.make_tensor_value_info("slope", TensorProto.FLOAT, [4, 1, 1])], [], []
    else:
        inputs = [x]
        inits = [numpy_helper.from_array(np.asarray(slope, np.float32), "w"),
                 numpy_helper.from_array(np.asarray([4, 1, 1], np.int64), "shape")]
        nodes = [helper.make_node("Reshape", ["w", "shape"], ["slope"])]
    nodes.append(helper.make_node("PRelu", ["x", "slope"], ["y"]))
    graph = helper.make_graph(nodes, "prelu", inputs, [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("slope,form", [([0.25, 0.0, 1.0, -0.5], "max"), ([0.25, 1.5, 0.1, 0.2], "relu_min"),
                                        (None, "relu_min")])
def test_prelu_rewrite_is_bit_exact_in_onnx_runtime(slope, form):
    """Max(x, slope*x) for constant slopes <= 1, Relu(x) + slope*Min(x, 0) otherwise (a slope > 1, or a slope
    that is not a constant): the same values as PRelu bit for bit, zeros and infinities included."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 4, 5, 6)) * 10.0 ** rng.integers(-30, 30, (1, 4, 5, 6))).astype(np.float32)
    x.flat[:6] = [0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45]
    slope_values = np.asarray(slope if slope is not None else [0.3, 2.0, -1.0, 0.0], np.float32)
    model = _prelu_graph(slope_values, slope_as_input=slope is None)
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    counts = engine_backends.decompose_prelu(model)
    assert counts[form] == 1 and sum(counts.values()) == 1
    assert not [n for n in model.graph.node if n.op_type == "PRelu"]
    rewritten = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {"x": x} if slope is not None else {"x": x, "slope": slope_values.reshape(4, 1, 1)}
    expected = plain.run(None, feed)[0]
    got = rewritten.run(None, feed)[0]
    reference = np.where(x < 0, x * slope_values.reshape(1, 4, 1, 1), x)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, reference)


def test_backends_agree_on_a_new_size_and_batch(exports):
    """One dynamic ONNX file serves other sizes and batch 2, in both runtimes, equal to Paddle Inference."""
    out, _ = exports("lsnet")
    info = load_deploy_info(out)
    inputs = [np.repeat(x, 2, axis=0) for x in check_inputs(info, (96, 128), seed=3)]
    outputs = {name: create_backend(out, name, threads=1).run(inputs) for name in ("paddle", "onnxruntime", "openvino")}
    for name in ("onnxruntime", "openvino"):
        assert exactness(info, outputs["paddle"], outputs[name])["max_rel_diff"] <= 1e-5, name


def test_openvino_compiles_once_per_input_shape_and_keeps_a_few(exports, monkeypatch):
    """The OpenVINO backend compiles a static-shape model per input shape (faster in its CPU plugin), reuses it
    for the same shape, drops the least recently used beyond OPENVINO_SHAPE_CACHE, and gives the output of the
    dynamic-shape model."""
    out, _ = exports("lsnet")
    info = load_deploy_info(out)
    monkeypatch.setattr(engine_backends, "OPENVINO_SHAPE_CACHE", 2)
    backend = create_backend(out, "openvino", threads=1)
    dynamic = engine_backends.openvino_model(os.path.join(out, engine_backends.ONNX_FILE), 1)
    sizes = [(64, 64), (96, 64), (64, 64), (64, 128)]
    for size in sizes:
        inputs = check_inputs(info, size, seed=1)
        got = backend.run(inputs)
        expected = dynamic(inputs)[dynamic.outputs[0]]
        assert exactness(info, expected, got)["max_rel_diff"] <= 1e-6, size
    shapes = [key[0][2:] for key in backend.compiled]
    assert shapes == [(64, 64), (64, 128)]  # (96, 64) was the least recently used when (64, 128) came
    for compiled in backend.compiled.values():
        assert all(port.get_partial_shape().is_static for port in compiled.inputs)


def test_auto_picks_the_fastest_exact_backend_and_says_why(exports, tmp_path):
    out, _ = exports("lsnet")
    folder = str(tmp_path / "copy")
    shutil.copytree(out, folder)
    path = os.path.join(folder, "backends.json")
    record = json.load(open(path))
    record["timings"] = {"1": {"paddle": 0.3, "onnxruntime": 0.2, "openvino": 0.1}}
    record["backends"]["openvino"] = {"exact": False, "reason": "pretend: 3 pixel decision(s) differ"}
    json.dump(record, open(path, "w"))
    backend = create_backend(folder, "auto", threads=1)
    assert backend.name == "onnxruntime"
    assert "fastest exact backend" in backend.config["chosen_because"]
    assert "refused by the exactness check: openvino" in backend.config["chosen_because"]
    with pytest.raises(BackendError, match="openvino was refused by the exactness check"):
        create_backend(folder, "openvino", threads=1)


def test_infer_tool_runs_every_backend_on_files(exports, tmp_path):
    """tools/infer.py --backend X on image pairs: the same change masks from every backend."""
    from PIL import Image

    from tools import infer as infer_tool

    out, _ = exports("lsnet")
    rng = np.random.default_rng(0)
    for folder in ("A", "B"):
        os.makedirs(tmp_path / folder)
        for name in ("p0", "p1"):
            Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / folder / f"{name}.png")
    masks = {}
    for backend in ("paddle", "onnxruntime", "openvino", "auto"):
        summary = infer_tool.main(["--model_dir", out, "--t0", str(tmp_path / "A"), "--t1", str(tmp_path / "B"),
                                   "--out", str(tmp_path / backend), "--backend", backend, "--cpu_threads", "1"])
        assert summary["backend"] in ("paddle", "onnxruntime", "openvino")
        masks[backend] = [np.asarray(Image.open(p)) for p in summary["written"]]
    for backend in ("onnxruntime", "openvino", "auto"):
        for a, b in zip(masks["paddle"], masks[backend]):
            assert (a != b).mean() < 1e-3, backend  # float32 ties aside, the same decisions


def test_a_refused_export_leaves_nothing_behind(tmp_path, empty_root, monkeypatch):
    """--check refuses an export whose requested backends are inexact: exit 2, one line, and neither a new
    folder nor a change to an existing one."""
    from tools import export as export_tool

    monkeypatch.setattr(engine_backends, "exactness",
                        lambda *args: {"exact": False, "reason": "pretend: 5 pixel decision(s) differ",
                                                 "max_rel_diff": 1.0})
    out = tmp_path / "refused"
    argv = ["--config", CONFIGS["lsnet"][0], "--out", str(out), "--format", "onnx", "--check", "64", "64",
            "--threads", "1", "--runs", "1", "-o", *EMPTY.format(root=empty_root).split(),
            "export.input_shape=[null, 3, null, null]"]
    assert run_cli(export_tool.main, argv) == EXIT_CONFIG
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if "exporting" in p]
    out.mkdir()
    (out / "keep.txt").write_text("previous export")
    assert run_cli(export_tool.main, argv) == EXIT_CONFIG
    assert sorted(os.listdir(out)) == ["keep.txt"]


def _one_line_error(capsys, fn, argv):
    code = run_cli(fn, argv)
    err = capsys.readouterr().err.strip()
    assert code == EXIT_CONFIG and err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


def test_bad_deployment_inputs_give_one_line_errors(exports, tmp_path, capsys, monkeypatch):
    from tools import infer as infer_tool

    out, _ = exports("lsnet")
    pics = tmp_path / "pics"
    for folder in ("A", "B"):
        os.makedirs(pics / folder)
        np.save(pics / "unused.npy", np.zeros(1))
    from PIL import Image

    for folder in ("A", "B"):
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(pics / folder / "x.png")
    base = ["--t0", str(pics / "A"), "--t1", str(pics / "B"), "--out", str(tmp_path / "o"), "--cpu_threads", "1"]

    # a folder without the expected files
    empty = tmp_path / "empty_model"
    empty.mkdir()
    assert "deploy.yml not found" in _one_line_error(capsys, infer_tool.main, ["--model_dir", str(empty), *base])
    no_onnx = tmp_path / "no_onnx"
    shutil.copytree(out, no_onnx)
    os.remove(no_onnx / "model.onnx")
    os.remove(no_onnx / "backends.json")
    err = _one_line_error(capsys, infer_tool.main, ["--model_dir", str(no_onnx), "--backend", "onnxruntime", *base])
    assert "model.onnx not found" in err and "--format onnx" in err

    # the ONNX file of another model (one input, not t0 / t1)
    other = tmp_path / "other"
    shutil.copytree(out, other)
    factseg_out, _ = exports("factseg")
    shutil.copy(os.path.join(factseg_out, "model.onnx"), other / "model.onnx")
    for backend in ("onnxruntime", "openvino"):
        err = _one_line_error(capsys, infer_tool.main, ["--model_dir", str(other), "--backend", backend, *base])
        assert "the ONNX file of another model" in err and "model.onnx" in err

    # a backend that is not installed
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    err = _one_line_error(capsys, infer_tool.main, ["--model_dir", out, "--backend", "openvino", *base])
    assert "openvino: the package is not installed" in err
    monkeypatch.setattr(builtins, "__import__", real_import)

    # an input whose height / width breaks the size divisor (LSNet: 8); tools/infer.py pads images, the
    # library refuses raw arrays that do not fit
    backend = create_backend(out, "onnxruntime", threads=1)
    bad = [np.zeros((1, 3, 60, 64), np.float32)] * 2
    with pytest.raises(BackendError, match=r"60x64.*multiples of 8 \(deploy.yml size_divisor"):
        backend.run(bad)
    with pytest.raises(BackendError, match="takes 2 input"):
        backend.run(bad[:1])
