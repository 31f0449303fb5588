"""Shared machinery of the alignment checks (reprod_log evidence, bars, reports, CLI).

Every check compares the two frameworks' full values in memory, applies its bar, and writes
``..._diff.log`` and ``..._result.json``. Under ``<out>/<step>/`` it also keeps the values as
reprod_log files (``<case>_<size>_<dtype>_torch.npy`` / ``_paddle.npy``, a pickled dict of numpy
arrays) that ``ReprodDiffHelper`` reads back. Arrays above ``EVIDENCE_FULL_LIMIT`` elements are kept
as a digest (a fixed strided sample plus L2 norm, sum and max|x| of the full array) unless
``--full-evidence`` (or ``ALIGN_EVIDENCE=full``) is given: every gradient of DANet-R101 at every
backward step would otherwise be ~0.5 GB per framework and step.

Status of a step: ``pass`` (every bar met), ``fail``, or ``rounding``: a float32 bar was missed
but the float64 run of the same step proves the semantics equal (every compared value within
1e-9 relative). ``rounding`` is still a missed bar: it exits 3, shown next to its float64
evidence in the report; it is never turned into a pass by a wider threshold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np

from rsrepro.outputs import flatten_outputs, to_numpy  # noqa: F401  (re-exported for the checks)

from .cases import AlignCase, resolve_cases

DEFAULT_OUT = Path(os.environ.get("ALIGN_OUT", "output/alignment"))
FLOAT64_REL = 1e-9
EXIT_PASS, EXIT_FAIL, EXIT_ROUNDING = 0, 1, 3


# ----------------------------------------------------------------------------- bars and rows
@dataclass
class Row:
    name: str
    max_diff: float
    mean_diff: float
    ref_max: float
    ref_mean: float
    bar: str
    passed: bool
    note: str = ""


def forward_bar(name: str, ref: np.ndarray, test: np.ndarray) -> Row:
    """max|diff| <= 1e-5 * max|ref| and mean|diff| <= 1e-6 * max(1, mean|ref|)."""
    diff = np.abs(ref.astype(np.float64) - test.astype(np.float64))
    ref_max, ref_mean = float(np.abs(ref).max()), float(np.abs(ref).mean())
    ok = diff.max() <= 1e-5 * ref_max and diff.mean() <= 1e-6 * max(1.0, ref_mean)
    return Row(name, float(diff.max()), float(diff.mean()), ref_max, ref_mean,
               "max<=1e-5*max|ref|, mean<=1e-6*max(1,mean|ref|)", bool(ok))


def relative_bar(rel: float) -> Callable[[str, np.ndarray, np.ndarray], Row]:
    """max|diff| <= rel * max|ref| (exact equality when the reference is all zeros)."""

    def bar(name: str, ref: np.ndarray, test: np.ndarray) -> Row:
        ref64, test64 = np.asarray(ref, np.float64), np.asarray(test, np.float64)
        if ref64.shape != test64.shape:
            return Row(name, float("inf"), float("inf"), 0.0, 0.0,
                       f"shape {ref64.shape} vs {test64.shape}", False)
        diff = np.abs(ref64 - test64)
        ref_max = float(np.abs(ref64).max()) if ref64.size else 0.0
        ref_mean = float(np.abs(ref64).mean()) if ref64.size else 0.0
        max_diff = float(diff.max()) if diff.size else 0.0
        mean_diff = float(diff.mean()) if diff.size else 0.0
        return Row(name, max_diff, mean_diff, ref_max, ref_mean, f"max<={rel:g}*max|ref|",
                   bool(max_diff <= rel * ref_max))

    return bar


def annotate_with_truth(rows: List[Row], prefix_of: Callable[[str], str],
                        torch32: Dict[str, np.ndarray], paddle32: Dict[str, np.ndarray],
                        truth: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Note on each missed float32 row how far EACH framework is from the float64 reference.

    Shows whether a miss is Paddle being less accurate than torch or both drifting equally. Returns
    the summary kept as ``StepResult.accuracy``: missed rows compared, in how many Paddle's float32
    value is at least as close to float64 as torch's, and each side's worst relative error.
    """
    compared = paddle_closer = 0
    worst_torch = worst_paddle = 0.0
    for row in rows:
        key = prefix_of(row.name)
        if row.passed or key not in truth or key not in torch32 or key not in paddle32:
            continue
        ref = np.asarray(truth[key], np.float64)
        scale = float(np.abs(ref).max()) or 1.0
        torch_err = float(np.abs(np.asarray(torch32[key], np.float64) - ref).max()) / scale
        paddle_err = float(np.abs(np.asarray(paddle32[key], np.float64) - ref).max()) / scale
        row.note = (f"vs float64 torch: torch32 {torch_err:.1e}, paddle32 {paddle_err:.1e} "
                    f"(relative to max|ref|)")
        compared += 1
        paddle_closer += paddle_err <= torch_err
        worst_torch, worst_paddle = max(worst_torch, torch_err), max(worst_paddle, paddle_err)
    return {"missed_rows_compared": compared, "paddle32_at_least_as_close": paddle_closer,
            "torch32_worst_rel_error": worst_torch, "paddle32_worst_rel_error": worst_paddle}


def compare_dicts(ref: Dict[str, np.ndarray], test: Dict[str, np.ndarray], bar) -> List[Row]:
    rows = []
    for name in ref:
        if name not in test:
            rows.append(Row(name, float("inf"), float("inf"), 0, 0, "missing on the Paddle side", False))
            continue
        rows.append(bar(name, ref[name], test[name]))
    rows += [Row(n, float("inf"), float("inf"), 0, 0, "missing on the torch side", False)
             for n in test if n not in ref]
    return rows


# ----------------------------------------------------------------------------- results
@dataclass
class StepResult:
    step: str
    case: str
    size: str
    dtype: str
    rows: List[Row]
    evidence: List[Row] = field(default_factory=list)  # float64 rows shown next to a float32 miss
    notes: List[str] = field(default_factory=list)
    status: str = ""
    # For a float32 miss: how far each framework's float32 values are from the float64 truth
    # (``annotate_with_truth``). A miss where torch32 is as far off as paddle32 is float32 noise of
    # the problem itself, not a Paddle inaccuracy.
    accuracy: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the step for this case (both frameworks, evidence included)
    shape: List[int] = field(default_factory=list)  # batch shape of one input of the run (B, C, H, W)
    # the float64 evidence's batch shape where it is smaller than ``shape`` (float64 at that size: over 30 min)
    evidence_shape: List[int] = field(default_factory=list)

    def finalize(self) -> StepResult:
        if all(r.passed for r in self.rows):
            self.status = "pass"
        elif self.dtype == "float32" and self.evidence and all(r.passed for r in self.evidence):
            self.status = "rounding"
        else:
            self.status = "fail"
        return self

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_PASS, "rounding": EXIT_ROUNDING}.get(self.status, EXIT_FAIL)

    def worst(self) -> Row | None:
        def score(r: Row) -> float:
            return r.max_diff / r.ref_max if r.ref_max else (0.0 if r.max_diff == 0 else float("inf"))

        return max(self.rows, key=score) if self.rows else None


def _format_rows(rows: Sequence[Row]) -> str:
    lines = [f"{'name':48s} {'max|diff|':>11s} {'mean|diff|':>11s} {'max|ref|':>11s}  pass  bar"]
    for r in rows:
        lines.append(f"{r.name[:48]:48s} {r.max_diff:11.3e} {r.mean_diff:11.3e} {r.ref_max:11.3e}  "
                     f"{'yes ' if r.passed else 'NO  '}  {r.bar}{'  ' + r.note if r.note else ''}")
    return "\n".join(lines)


def write_result(result: StepResult, out: Path) -> Path:
    step_dir = out / result.step
    step_dir.mkdir(parents=True, exist_ok=True)
    stem = result_stem(result.case, result.size, result.dtype)
    text = [f"step={result.step} case={result.case} size={result.size} dtype={result.dtype} "
            f"status={result.status}", _format_rows(result.rows)]
    if result.evidence:
        title = (f"float64 evidence (bar {FLOAT64_REL:g} relative):" if result.step != "convergence"
                 else "floor: torch against torch nudged by 1e-15 (for comparison, not a bar):")
        text += ["", title, _format_rows(result.evidence)]
    text += [f"note: {n}" for n in result.notes]
    (step_dir / f"{stem}_diff.log").write_text("\n".join(text) + "\n")
    (step_dir / f"{stem}_result.json").write_text(json.dumps(asdict(result), indent=1, default=float))
    return step_dir / f"{stem}_diff.log"


def result_stem(case: str, size: str, dtype: str) -> str:
    """File stem of a case's evidence; the non-default weight regime is part of the name."""
    init = os.environ.get("ALIGN_INIT", "conditioned")
    return f"{case}_{size}_{dtype}" + ("" if init == "conditioned" else f"_{init}")


EVIDENCE_FULL_LIMIT = 1 << 16
EVIDENCE_SAMPLE = 4096


def evidence_digest(values: Dict[str, np.ndarray], full: bool | None = None) -> Dict[str, np.ndarray]:
    """What is kept on disk for ``values``: small arrays as they are, large ones as a digest."""
    if full is None:
        full = os.environ.get("ALIGN_EVIDENCE", "digest") == "full"
    kept: Dict[str, np.ndarray] = {}
    for name, value in values.items():
        array = np.asarray(value)
        if full or array.size <= EVIDENCE_FULL_LIMIT:
            kept[name] = array
            continue
        flat = array.reshape(-1)
        stride = -(-flat.size // EVIDENCE_SAMPLE)
        kept[f"{name}@sample{stride}"] = flat[::stride].copy()
        as64 = flat.astype(np.float64)
        kept[f"{name}@l2"] = np.asarray([np.sqrt(np.dot(as64, as64))])
        kept[f"{name}@sum"] = np.asarray([as64.sum()])
        kept[f"{name}@maxabs"] = np.asarray([np.abs(as64).max()])
    return kept


def save_reprod_pair(out: Path, step: str, stem: str, torch_values: Dict[str, np.ndarray],
                     paddle_values: Dict[str, np.ndarray]) -> Tuple[Dict, Dict]:
    """Save both sides with reprod_log (digested, see module doc) and return the full values to compare.

    The saved files are read back with ``ReprodDiffHelper`` so a file reprod_log cannot load fails
    here, not in a user's later comparison.
    """
    from reprod_log import ReprodDiffHelper, ReprodLogger

    step_dir = out / step
    step_dir.mkdir(parents=True, exist_ok=True)
    full: List[Dict[str, np.ndarray]] = []
    for side, values in (("torch", torch_values), ("paddle", paddle_values)):
        arrays = {name: np.asarray(value) for name, value in values.items()}
        logger = ReprodLogger()
        for name, value in evidence_digest(arrays).items():
            logger.add(name, value)
        path = step_dir / f"{stem}_{side}.npy"
        tmp = path.with_name(path.stem + ".tmp.npy")
        logger.save(str(tmp))
        ReprodDiffHelper().load_info(str(tmp))
        os.replace(tmp, path)
        full.append(arrays)
    return full[0], full[1]


# ----------------------------------------------------------------------------- models and data
def seed_all(seed: int) -> None:
    import paddle
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    paddle.seed(seed)


@contextlib.contextmanager
def paddle_dtype(dtype: str) -> Iterator[None]:
    import paddle

    previous = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        yield
    finally:
        paddle.set_default_dtype(previous)


def randomize_reference(model, seed: int, case: AlignCase | None = None,
                        scale_logits: bool = True) -> None:
    """Give the reference random weights with the statistics of a trained network.

    A fresh model has BN = identity and attention gamma = 0 (which would leave the BN-buffer
    conversion and the attention branches untested), and with He-init residual branches the
    activations of a deep ResNet grow with depth (DANet-R101 logits reach ~2000). Trained
    networks look different, so the reference gets: BN weight U(0.8, 1.2), bias N(0, 0.05),
    running mean N(0, 0.05), running var U(0.8, 1.2); the BN closing each residual branch
    (``bn3``) weight U(0.1, 0.3) (trained ResNets have small ones; cf. zero-init residual);
    PReLU slopes U(0.1, 0.4); attention gammas U(0.3, 1.0); and the case's classifier weights multiplied by
    ``case.logit_scale`` so that logits are O(10) as in a trained segmentation model.
    ``--init plain`` skips the bn3 and classifier rescaling (fresh He-init) to show that regime.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    plain = os.environ.get("ALIGN_INIT", "conditioned") == "plain"
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
                n = module.num_features
                low, high = (0.1, 0.3) if name.endswith("bn3") and not plain else (0.8, 1.2)
                module.weight.copy_(low + (high - low) * torch.rand(n, generator=gen))
                module.bias.copy_(0.05 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.05 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.8 + 0.4 * torch.rand(n, generator=gen))
            elif isinstance(module, torch.nn.PReLU):
                module.weight.copy_(0.1 + 0.3 * torch.rand(module.weight.shape, generator=gen))
        for name, param in model.named_parameters():
            if name.endswith("gamma") and param.numel() == 1:
                param.copy_(0.3 + 0.7 * torch.rand(1, generator=gen))
        if case is not None and scale_logits and not plain:
            for name in case.logit_layers:
                model.get_submodule(name).weight.mul_(case.logit_scale)


BN_EPS_NOTE = ("Paddle's batch_norm op holds epsilon as a float32 attribute (0.01 -> 0.0099999998); "
               "float64 runs give the torch BatchNorms the same float32-rounded epsilon")


def round_bn_eps_to_float32(torch_model) -> None:
    import torch

    for module in torch_model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eps = float(np.float32(module.eps))


def build_pair(case: AlignCase, dtype: str = "float32", seed: int = 0, scale_logits: bool = True):
    """The torch reference (randomised, eval mode) and the Paddle model with converted weights.

    ``scale_logits=False`` keeps the classifier as initialised (check_train: the start of a
    fine-tuning run, a trained backbone under a fresh head).
    """
    import paddle_models
    import torch_ref

    from .convert import convert_state_dict

    seed_all(seed)
    torch_model = torch_ref.build_model(case.model, **case.model_kwargs)
    randomize_reference(torch_model, seed, case, scale_logits)
    if dtype == "float64":
        torch_model = torch_model.double()
        round_bn_eps_to_float32(torch_model)
    with paddle_dtype(dtype):
        paddle_model = paddle_models.build_model(case.model, **case.model_kwargs)
    paddle_model.set_state_dict(convert_state_dict(torch_model.state_dict(), paddle_model))
    torch_model.eval()
    paddle_model.eval()
    return torch_model, paddle_model


def make_batch(case: AlignCase, shape: Sequence[int], seed: int, dtype: str = "float32"):
    rng = np.random.RandomState(seed)
    if case.input_range is not None:
        low, high = case.input_range
        inputs = [rng.uniform(low, high, size=shape).astype(dtype) for _ in range(case.num_inputs)]
    else:
        inputs = [(rng.randn(*shape) * case.input_scale).astype(dtype) for _ in range(case.num_inputs)]
    labels = case.make_labels(rng, tuple(shape))
    return inputs, labels


@contextlib.contextmanager
def feature_hooks(torch_model, paddle_model, names: Sequence[str]):
    """Collect the outputs of the named submodules on both sides."""
    torch_feats: Dict[str, Any] = {}
    paddle_feats: Dict[str, Any] = {}
    handles = []
    paddle_layers = dict(paddle_model.named_sublayers())
    for name in names:
        module = torch_model.get_submodule(name)
        handles.append(module.register_forward_hook(
            lambda m, i, o, n=name: torch_feats.__setitem__(n, o)))
        if name not in paddle_layers:
            raise KeyError(f"hook '{name}' has no Paddle twin")
        handles.append(paddle_layers[name].register_forward_post_hook(
            lambda m, i, o, n=name: paddle_feats.__setitem__(n, o)))
    try:
        yield torch_feats, paddle_feats
    finally:
        for h in handles:
            h.remove()


def disable_dropout(torch_model, paddle_model) -> int:
    import torch
    from paddle import nn as pnn

    count = 0
    for m in torch_model.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.p = 0.0
            count += 1
    for m in paddle_model.sublayers():
        if isinstance(m, (pnn.Dropout, pnn.Dropout2D, pnn.Dropout3D)):
            m.p = 0.0
    return count


# ----------------------------------------------------------------------------- CLI
def make_parser(step: str, dtypes: Sequence[str] = ("float32",)) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=f"Paddle-vs-torch alignment: {step}")
    parser.add_argument("--model", nargs="*", default=None,
                        help="case names (e.g. danet_r50) or model names; default: all")
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--dtype", choices=list(dtypes), default=dtypes[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", choices=["conditioned", "plain"], default=None,
                        help="reference weight regime (see randomize_reference); default conditioned")
    parser.add_argument("--allow-rounding", action="store_true",
                        help="exit 0 when a float32 miss is proved to be rounding by float64")
    parser.add_argument("--full-evidence", action="store_true",
                        help="keep every compared array in the reprod_log files (default: large arrays "
                             "as a sample + norms; DANet-R101 backward is then ~0.5 GB per step and side)")
    return parser


def run_step(step: str, run_case: Callable[[AlignCase, argparse.Namespace], StepResult],
             argv: Sequence[str] | None = None, dtypes: Sequence[str] = ("float32",),
             parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or make_parser(step, dtypes)
    args = parser.parse_args(argv)
    if args.init:
        os.environ["ALIGN_INIT"] = args.init
    if args.full_evidence:
        os.environ["ALIGN_EVIDENCE"] = "full"
    codes = []
    for case in resolve_cases(args.model):
        start = time.perf_counter()
        result = run_case(case, args).finalize()
        result.seconds = time.perf_counter() - start
        log = write_result(result, args.out)
        top = result.worst()
        detail = (f"worst {top.name}: max|diff| {top.max_diff:.3e} (max|ref| {top.ref_max:.3e})"
                  if top else "")
        print(f"[{step}] {case.name:16s} {args.size:5s} {result.dtype:7s} {result.status.upper():8s} "
              f"{detail}  -> {log}", flush=True)
        code = result.exit_code
        codes.append(EXIT_PASS if code == EXIT_ROUNDING and args.allow_rounding else code)
    return combine_exit_codes(codes)


def combine_exit_codes(codes: Sequence[int]) -> int:
    if EXIT_FAIL in codes:
        return EXIT_FAIL
    return EXIT_ROUNDING if EXIT_ROUNDING in codes else EXIT_PASS


def main_guard(fn: Callable[[], int]) -> None:
    sys.exit(fn())
