"""Step 4: the same model outputs and labels give the same loss and the same loss gradient.

Outputs are the torch reference's outputs on a random batch (realistic shapes and magnitudes),
plus the same outputs x8 (logit gaps beyond 64, where Paddle's own softmax / cross_entropy
kernels clip); both losses get identical arrays. Bar: loss relative
difference <= 1e-6, and d loss / d outputs max|diff| <= 1e-6 max|grad_ref|. Every loss variant a
case lists is checked. A float32 miss gets the same arrays and labels through both losses in float64 as
evidence (bar 1e-9), and each missed value says how far each framework's float32 result is from it: at
paper sizes a loss reduces up to a million float32 terms, and how each framework sums them shows there.

    python -m alignment.check_loss --model danet_r50
"""

from __future__ import annotations

import argparse
from typing import Dict, Iterator, List, Tuple

import numpy as np

from .cases import AlignCase
from .harness import (
    FLOAT64_REL,
    Row,
    StepResult,
    annotate_with_truth,
    build_pair,
    compare_dicts,
    flatten_outputs,
    make_batch,
    paddle_dtype,
    relative_bar,
    result_stem,
    run_step,
    save_reprod_pair,
)

LOSS_REL = 1e-6


def _unflatten_like(structure, arrays: List, to_tensor):
    """Rebuild the model's nested output structure from a flat list of arrays."""
    it = iter(arrays)

    def rebuild(node):
        if isinstance(node, (list, tuple)):
            return type(node)(rebuild(n) for n in node) if isinstance(node, tuple) else [rebuild(n) for n in node]
        return to_tensor(next(it))

    return rebuild(structure)


def loss_values(case: AlignCase, loss_kwargs: Dict, outputs_structure, arrays: List[np.ndarray],
                labels: np.ndarray):
    import paddle
    import torch

    import paddle_models
    import torch_ref

    torch_leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    paddle_leaves = [paddle.to_tensor(a, stop_gradient=False) for a in arrays]
    torch_loss = torch_ref.build_loss(case.loss, **loss_kwargs)(
        _unflatten_like(outputs_structure, torch_leaves, lambda t: t), torch.from_numpy(labels))
    paddle_loss = paddle_models.build_loss(case.loss, **loss_kwargs)(
        _unflatten_like(outputs_structure, paddle_leaves, lambda t: t), paddle.to_tensor(labels))
    torch_loss.backward()
    paddle_loss.backward()
    torch_values = {"loss": np.array(torch_loss.item())}
    paddle_values = {"loss": np.array(float(paddle_loss))}
    for i, (t, p) in enumerate(zip(torch_leaves, paddle_leaves)):
        torch_values[f"grad.out{i}"] = t.grad.numpy() if t.grad is not None else np.zeros_like(arrays[i])
        paddle_values[f"grad.out{i}"] = p.grad.numpy() if p.grad is not None else np.zeros_like(arrays[i])
    return torch_values, paddle_values


def variant_values(case: AlignCase, outputs_structure, arrays: List[np.ndarray], labels: np.ndarray, dtype: str
                   ) -> Iterator[Tuple[str, Dict[str, np.ndarray], Dict[str, np.ndarray]]]:
    """(variant, torch values, paddle values) for every loss variant of the case, the arrays cast to ``dtype``."""
    variants = list(case.loss_variants().items())
    # Logits spanning more than 64: Paddle's own softmax/cross_entropy kernels clip there.
    variants.append(("default_logits_x8", dict(case.loss_kwargs)))
    arrays = [a.astype(dtype) for a in arrays]
    with paddle_dtype(dtype):
        for variant, loss_kwargs in variants:
            scaled = [a * 8.0 for a in arrays] if variant.endswith("_logits_x8") else arrays
            ignore = loss_kwargs.get("ignore_index", 255)
            # The official DANet code feeds label -1 for ignored pixels (Paddle's negative-ignore trap).
            variant_labels = np.where(labels == 255, ignore, labels) if ignore != 255 else labels
            yield (variant, *loss_values(case, loss_kwargs, outputs_structure, scaled, variant_labels))


def _prefixed(variant: str, values: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {f"{variant}.{name}": v for name, v in values.items()}


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    import torch

    torch_model, _ = build_pair(case, "float32", args.seed)
    inputs, labels = make_batch(case, case.input_shapes[args.size], args.seed)
    with torch.no_grad():
        outputs = torch_model(*[torch.from_numpy(x) for x in inputs])
    arrays = list(flatten_outputs(outputs).values())
    rows: List[Row] = []
    bar = relative_bar(LOSS_REL)
    torch32: Dict[str, np.ndarray] = {}
    paddle32: Dict[str, np.ndarray] = {}
    for variant, torch_values, paddle_values in variant_values(case, outputs, arrays, labels, "float32"):
        stem = result_stem(f"{case.name}-{variant}", args.size, "float32")
        torch_info, paddle_info = save_reprod_pair(args.out, "loss", stem, torch_values, paddle_values)
        rows += [bar(f"{variant}.{name}", torch_info[name], paddle_info[name]) for name in torch_info]
        torch32.update(_prefixed(variant, torch_values))
        paddle32.update(_prefixed(variant, paddle_values))
    result = StepResult("loss", case.name, args.size, "float32", rows, shape=list(case.input_shapes[args.size]))
    if not all(r.passed for r in rows):
        torch64: Dict[str, np.ndarray] = {}
        paddle64: Dict[str, np.ndarray] = {}
        for variant, torch_values, paddle_values in variant_values(case, outputs, arrays, labels, "float64"):
            torch64.update(_prefixed(variant, torch_values))
            paddle64.update(_prefixed(variant, paddle_values))
        result.evidence = compare_dicts(torch64, paddle64, relative_bar(FLOAT64_REL))
        result.accuracy = annotate_with_truth(rows, lambda name: name, torch32, paddle32, torch64)
        result.notes.append("loss float64 evidence: the float32 model outputs cast to float64, both losses in float64")
    return result


def main(argv=None) -> int:
    return run_step("loss", run_case, argv)


if __name__ == "__main__":
    raise SystemExit(main())
