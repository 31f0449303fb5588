"""The benchmark scripts still run and report what the README quotes (smoke sizes; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bench_utils  # benchmarks/ is on pytest's pythonpath (pyproject.toml)
import profile_infer
import pytest

from paddle_models.engine.export import ONEDNN_DELETED_PASSES

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

REPORT = """------------------------->     Profiling Report     <-------------------------
Event                                  Calls       Total       Min.        Max.        Ave.        Ratio.
pd_op.prelu                            246         903.835     0.214672    25.7323     3.67412     0.238545
  PhiKernelInstruction::infermeta      246         3.75977     0.003438    0.066118    0.0152836   0.000992299
onednn_op.fused_conv2d                 129         633.44      0.11814     24.6038     4.91038     0.167181
------------------------->     Profiling Report     <-------------------------
thread0::pd_op.prelu                   246         903.835     0.214672    25.7323     3.67412     0.238545
------------------------->    Memory Profiling Report     <-------------------------
"""


def test_profile_report_parser_reads_the_summary_table_only():
    rows = profile_infer.parse_report(REPORT)
    assert rows == [{"op": "pd_op.prelu", "calls": 246, "total_ms": 903.835},
                    {"op": "onednn_op.fused_conv2d", "calls": 129, "total_ms": 633.44}]
    with pytest.raises(RuntimeError, match="no Paddle Inference profiling report"):
        profile_infer.parse_report("nothing here")


def test_deploy_mode_is_the_package_deployment_config(monkeypatch, tmp_path):
    """speed.py's `deploy` column must measure what create_predictor(onednn="auto") builds."""
    from paddle import inference

    for name in ("inference.json", "inference.pdiparams"):
        (tmp_path / name).write_text("")

    deleted = []
    monkeypatch.setattr(inference.Config, "delete_pass", lambda self, name: deleted.append(name))
    bench_utils.inference_config(str(tmp_path), 1, "deploy")
    assert deleted == list(ONEDNN_DELETED_PASSES) == ["onednn_placement_pass", "transfer_layout_pass"]
    deleted.clear()
    bench_utils.inference_config(str(tmp_path), 1, "no_placement")
    assert deleted == ["onednn_placement_pass"]
    with pytest.raises(ValueError, match="onednn must be one of"):
        bench_utils.inference_config(str(tmp_path), 1, "fast")


def test_speed_quick_lsnet_deploy_column(tmp_path):
    """In a child process: speed.py sets process-wide thread counts."""
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, str(BENCH / "speed.py"), "--quick", "--models", "lsnet", "--threads", "1",
                           "--runs", "1", "--warmup", "0", "--settle", "0", "--no-train", "--infer-modes", "deploy",
                           "--out", str(out)],
                          capture_output=True, text=True, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())["results"]["lsnet"]
    assert result["errors"] == {}
    assert set(result["seconds"]) == {"torch", "paddle", "infer_deploy", "onnx_ort", "onnx_openvino",
                                      "torch_onnx_ort"}
    for column in ("infer_deploy", "onnx_ort", "onnx_openvino", "torch_onnx_ort"):
        assert result["rel_l2_vs_torch"][column] < 1e-5, column
        assert column in json.loads(out.read_text())["table"]
    for column in ("infer_deploy", "onnx_ort", "onnx_openvino"):  # each judged by the package's rule
        verdict = result["exactness"][column]
        assert verdict["exact"] and verdict["max_rel_diff"] <= verdict["max_rel_diff_any_output"] < 1e-5, column
        assert verdict["decision_pixels_changed"] == 0  # LSNet's deployed output: 2-class logits, argmax held


def test_speed_rounds_alternate_so_no_column_always_follows_the_same_one():
    from speed import round_order

    keys = ["torch", "paddle", "onnx_ort", "torch_onnx_ort"]
    orders = [round_order(keys, r) for r in range(4)]
    assert all(sorted(order) == sorted(keys) for order in orders)
    sequence = [key for order in orders for key in order]  # rounds run back to back
    before_onnx = {sequence[i - 1] for i, key in enumerate(sequence) if key == "onnx_ort"}
    assert before_onnx == {"paddle", "torch_onnx_ort"}


def test_speed_inference_columns_run_in_eval_mode_after_a_training_column():
    """The training columns put the shared model in train mode; the inference columns must not time (and
    compute) train-mode inference after them."""
    import paddle
    import torch
    from speed import infer_step, paddle_train_step, torch_train_step

    t_model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5))
    p_model = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Dropout(0.5))
    t_in, p_in = [torch.ones(2, 3, 8, 8)], [paddle.ones([2, 3, 8, 8])]
    t_infer, p_infer = infer_step(t_model, t_in, torch.no_grad), infer_step(p_model, p_in, paddle.no_grad)
    torch_train_step(t_model, t_in)()
    paddle_train_step(p_model, p_in)()
    assert t_model.training and p_model.training
    t_out, p_out = t_infer(), p_infer()
    assert not t_model.training and not p_model.training
    with torch.no_grad():  # eval-mode reference (train mode: dropout and batch statistics give another output)
        t_reference = t_model.eval()(*t_in)
    p_model.eval()
    with paddle.no_grad():
        p_reference = p_model(*p_in)
    assert torch.equal(t_out, t_reference)
    assert (p_out.numpy() == p_reference.numpy()).all()


def test_onnx_graph_diff_counts_nodes_by_op_type(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper
    from onnx_graph_diff import main, op_counts

    def write(name, ops):
        nodes = [helper.make_node(op, [f"t{i}"], [f"t{i + 1}"]) for i, op in enumerate(ops)]
        graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info(f"t{len(ops)}", TensorProto.FLOAT, [1])])
        path = tmp_path / f"{name}.onnx"
        onnx.save(helper.make_model(graph), str(path))
        return str(path)

    first, second = write("a", ["Relu", "Identity", "Identity"]), write("b", ["Relu"])
    assert op_counts(first) == {"Relu": 1, "Identity": 2}
    assert main([first, second]) == 0
    out = capsys.readouterr().out
    assert "nodes: 3 in" in out and out.index("Identity") < out.index("Relu")  # differing types first


def _case_outputs(rng, kind):
    """Distinct flattened outputs of a fake model: an auxiliary map, then the deployed output."""
    aux = rng.standard_normal((1, 4, 8, 8))
    if kind == "scores":
        return [aux.astype("float32"), rng.standard_normal((1, 3, 8, 8)).astype("float32")]
    return [aux.astype("float32"), *(rng.standard_normal((1, 4, 8, 8)).astype("float32") for _ in range(2))]


def test_deployment_exactness_judges_the_deployed_output_by_the_package_rule():
    import numpy as np

    rng = np.random.default_rng(0)
    case = bench_utils.Case("any", deployed=("scores", -1))
    reference = _case_outputs(rng, "scores")
    assert bench_utils.deployment_exactness(case, reference, [r.copy() for r in reference])["exact"]
    # an auxiliary output far off: reported, but not what a deployment returns
    off_aux = [reference[0] * 1.01, reference[1]]
    verdict = bench_utils.deployment_exactness(case, reference, off_aux)
    assert verdict["exact"] and verdict["max_rel_diff_any_output"] > 1e-3
    # one changed argmax (a pixel decided by far more than the bar) in the deployed scores: refused
    flipped = reference[1].copy()
    top = flipped[0, :, 2, 3].argmax()
    flipped[0, (top + 1) % 3, 2, 3] = flipped[0, top, 2, 3] + 1.0
    verdict = bench_utils.deployment_exactness(case, reference, [reference[0], flipped])
    assert not verdict["exact"] and "decision" in verdict["reason"]
    # a missing output (a runtime that dropped one): refused with the shapes named
    verdict = bench_utils.deployment_exactness(case, reference, reference[1:])
    assert not verdict["exact"] and "dygraph's" in verdict["reason"]


def test_deployment_exactness_of_a_distance_uses_the_value_bar_and_float64_truth():
    import numpy as np

    rng = np.random.default_rng(1)
    case = bench_utils.Case("any", deployed=("distance", 1, 2))
    reference = _case_outputs(rng, "distance")
    noisy = [reference[0], reference[1] * (1 + 1e-4), reference[2]]
    assert not bench_utils.deployment_exactness(case, reference, noisy)["exact"]
    # dygraph's own float32 output is ~1e-4 from float64: a backend about as far from float64 is not refused,
    # one ten times as far is
    truth = [r.astype("float64") for r in reference]
    truth[1] = truth[1] * (1 - 1e-4)
    verdict = bench_utils.deployment_exactness(case, reference, noisy, truth)
    assert verdict["exact"] and verdict["max_rel_diff"] > 1e-5
    far = [reference[0], reference[1] * (1 + 1e-3), reference[2]]
    assert not bench_utils.deployment_exactness(case, reference, far, truth)["exact"]
    assert bench_utils.deployed_output(case, reference).shape == (1, 8, 8)


def test_speed_openvino_column_runs_one_inference_per_call(monkeypatch, tmp_path):
    """The OpenVINO column once ran the model once per output (3-6x too slow for multi-output models)."""
    import argparse

    import numpy as np
    from speed import onnx_runners

    from paddle_models.engine import backends

    calls = []

    class FakeCompiled:
        outputs = ["a", "b", "c"]

        def __call__(self, inputs):
            calls.append(1)
            return {"a": np.ones((1, 2, 4, 4), "float32"), "b": np.zeros(1, "float32"), "c": np.zeros(1, "float32")}

    monkeypatch.setattr(backends, "convert_to_onnx", lambda model_dir: {"file": str(tmp_path / "m.onnx")})
    monkeypatch.setattr(backends, "read_openvino_model", lambda path: object())
    monkeypatch.setattr(backends, "compile_openvino", lambda model, threads, shapes=None: FakeCompiled())
    args = argparse.Namespace(onnx_modes=["onnx_openvino"], threads=1)
    result = {"errors": {}, "rel_l2_vs_torch": {}}
    judged = {}
    fns = onnx_runners(args, str(tmp_path), None, [], [np.ones((1, 3, 4, 4), "float32")],
                       np.ones((1, 2, 4, 4), "float32"), result, lambda key, outs: judged.update({key: outs}))
    assert result["errors"] == {} and len(judged["onnx_openvino"]) == 3
    calls.clear()
    outputs = fns["onnx_openvino"]()
    assert len(calls) == 1 and len(outputs) == 3
