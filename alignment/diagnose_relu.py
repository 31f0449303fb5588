"""Why float32 gradients can miss the backward bar while float64 agrees: activation sign flips.

The gradient of a ReLU (PReLU, LeakyReLU) is a step function of its input. Where a pre-activation lies within float32
rounding of 0, torch and Paddle (whose conv kernels round differently) can disagree on its sign,
and the whole upstream gradient at that position is kept by one and dropped by the other. This
script counts such flips, per ReLU call, between the two frameworks' float32 forwards on the
backward check's batch, and between each framework and the float64 forward.

    python -m alignment.diagnose_relu --model danet_r50 [--size small]
"""

from __future__ import annotations

import argparse
from typing import Dict, List

import numpy as np

from .cases import resolve_cases
from .harness import build_pair, make_batch


def relu_inputs(torch_model, paddle_model, inputs) -> Dict[str, List[List[np.ndarray]]]:
    import paddle
    import torch
    from paddle import nn as pnn

    captured: Dict[str, Dict[str, List[np.ndarray]]] = {"torch": {}, "paddle": {}}
    handles = []
    for name, module in torch_model.named_modules():
        if isinstance(module, (torch.nn.ReLU, torch.nn.PReLU, torch.nn.LeakyReLU)):
            handles.append(module.register_forward_pre_hook(
                lambda m, i, n=name: captured["torch"].setdefault(n, []).append(i[0].detach().numpy().copy())))
    for name, layer in paddle_model.named_sublayers():
        if isinstance(layer, (pnn.ReLU, pnn.PReLU, pnn.LeakyReLU)):
            handles.append(layer.register_forward_pre_hook(
                lambda m, i, n=name: captured["paddle"].setdefault(n, []).append(i[0].numpy().copy())))
    with torch.no_grad(), paddle.no_grad():
        torch_model(*[torch.from_numpy(x) for x in inputs])
        paddle_model(*[paddle.to_tensor(x) for x in inputs])
    for h in handles:
        h.remove()
    return captured


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=["danet_r50"])
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    for case in resolve_cases(args.model):
        shape = case.input_shapes[args.size]
        torch32, paddle32 = build_pair(case, "float32", args.seed)
        inputs, _ = make_batch(case, shape, args.seed, "float32")
        f32 = relu_inputs(torch32, paddle32, inputs)
        torch64, paddle64 = build_pair(case, "float64", args.seed)
        f64 = relu_inputs(torch64, paddle64, [x.astype("float64") for x in inputs])
        rows = []
        for name, calls in f32["torch"].items():
            for k, t32 in enumerate(calls):
                p32, t64 = f32["paddle"][name][k], f64["torch"][name][k]
                rows.append((int(((t32 > 0) != (p32 > 0)).sum()), int(((t32 > 0) != (t64 > 0)).sum()),
                             int(((p32 > 0) != (t64 > 0)).sum()), t32.size, f"{name}#{k}"))
        total = [sum(r[i] for r in rows) for i in range(3)]
        print(f"{case.name} ({shape}): {len(rows)} activation calls, {sum(r[3] for r in rows)} pre-activations; "
              f"sign flips torch32-vs-paddle32 {total[0]}, torch32-vs-float64 {total[1]}, "
              f"paddle32-vs-float64 {total[2]}")
        for flips, t_flips, p_flips, size, name in sorted(rows, reverse=True)[: args.top]:
            print(f"  {name:40s} torch32/paddle32 {flips:4d}  torch32/f64 {t_flips:4d}  "
                  f"paddle32/f64 {p_flips:4d}  of {size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
