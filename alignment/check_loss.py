"""Step 4: the same model outputs and labels give the same loss and the same loss gradient.

Outputs are the torch reference's outputs on a random batch (realistic shapes and magnitudes),
plus the same outputs x8 (logit gaps beyond 64, where Paddle's own softmax / cross_entropy
kernels clip); both losses get identical arrays. Bar: loss relative
difference <= 1e-6, and d loss / d outputs max|diff| <= 1e-6 max|grad_ref|. Every loss variant a
case lists is checked.

    python -m alignment.check_loss --model danet_r50
"""

from __future__ import annotations

import argparse
from typing import Dict, List

import numpy as np

from .cases import AlignCase
from .harness import (
    Row,
    StepResult,
    build_pair,
    flatten_outputs,
    make_batch,
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


def run_case(case: AlignCase, args: argparse.Namespace) -> StepResult:
    import torch

    torch_model, _ = build_pair(case, "float32", args.seed)
    inputs, labels = make_batch(case, case.input_shapes[args.size], args.seed)
    with torch.no_grad():
        outputs = torch_model(*[torch.from_numpy(x) for x in inputs])
    arrays = list(flatten_outputs(outputs).values())
    rows: List[Row] = []
    bar = relative_bar(LOSS_REL)
    variants = list(case.loss_variants().items())
    # Logits spanning more than 64: Paddle's own softmax/cross_entropy kernels clip there.
    variants.append(("default_logits_x8", dict(case.loss_kwargs)))
    for variant, loss_kwargs in variants:
        if variant.endswith("_logits_x8"):
            arrays = [a * 8.0 for a in arrays]
        ignore = loss_kwargs.get("ignore_index", 255)
        # The official DANet code feeds label -1 for ignored pixels (Paddle's negative-ignore trap).
        variant_labels = np.where(labels == 255, ignore, labels) if ignore != 255 else labels
        torch_values, paddle_values = loss_values(case, loss_kwargs, outputs, arrays, variant_labels)
        stem = result_stem(f"{case.name}-{variant}", args.size, "float32")
        torch_info, paddle_info = save_reprod_pair(args.out, "loss", stem, torch_values, paddle_values)
        rows += [bar(f"{variant}.{name}", torch_info[name], paddle_info[name]) for name in torch_info]
    return StepResult("loss", case.name, args.size, "float32", rows)


def main(argv=None) -> int:
    return run_step("loss", run_case, argv)


if __name__ == "__main__":
    raise SystemExit(main())
