"""Optimizer stepping of both frameworks side by side (used by check_backward and check_train)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .cases import AlignCase
from .convert import torch_key_to_paddle

FLOAT32_COEFFICIENTS_NOTE = (
    "Paddle's Momentum op holds momentum and weight decay, and AdamW its weight decay, as float32 "
    "attributes (0.9 -> 0.89999998) even for float64 parameters (Adam's betas/eps stay exact); float64 "
    "runs give the torch optimizer the same float32-rounded coefficients (with exact values the two "
    "drift apart by ~1e-9 relative per step)")

# Which coefficients each Paddle optimizer holds in float32 (measured on Paddle 3.3.1, float64 params).
_FLOAT32_COEFFICIENTS = {"momentum": ("momentum", "weight_decay"), "sgd": ("momentum", "weight_decay"),
                         "adamw": ("weight_decay",), "adam": ()}


def float32_coefficients(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The optimizer config with the coefficients Paddle keeps in float32 rounded to float32."""
    out = dict(cfg)
    for key in _FLOAT32_COEFFICIENTS.get(out.get("type", "momentum"), ()):
        if out.get(key) is not None:
            out[key] = float(np.float32(out[key]))
    return out


class TwinTrainer:
    """The torch reference and the Paddle model, each with the case's optimizer and schedule."""

    def __init__(self, case: AlignCase, torch_model, paddle_model, optimizer_cfg: Mapping[str, Any],
                 schedule_cfg: Mapping[str, Any], total_steps: int,
                 loss_kwargs: Mapping[str, Any] | None = None, float32_coeffs: bool = False) -> None:
        import paddle_models
        import torch_ref
        from paddle_models.engine import build_optimizer as paddle_optimizer
        from paddle_models.engine import build_scheduler as paddle_scheduler
        from torch_ref.engine.optim import build_optimizer as torch_optimizer
        from torch_ref.engine.optim import build_scheduler as torch_scheduler

        self.torch_model, self.paddle_model = torch_model, paddle_model
        self.optimizer_cfg = dict(optimizer_cfg)
        torch_cfg = float32_coefficients(self.optimizer_cfg) if float32_coeffs else self.optimizer_cfg
        loss_kwargs = dict(case.loss_kwargs if loss_kwargs is None else loss_kwargs)
        self.torch_loss = torch_ref.build_loss(case.loss, **loss_kwargs)
        self.paddle_loss = paddle_models.build_loss(case.loss, **loss_kwargs)
        base_lr = float(schedule_cfg["base_lr"])
        self.torch_opt = torch_optimizer(torch_cfg, torch_model, base_lr)
        self.torch_sched = torch_scheduler(schedule_cfg, total_steps, self.torch_opt)
        self.paddle_sched = paddle_scheduler(schedule_cfg, total_steps)
        self.paddle_opt = paddle_optimizer(self.optimizer_cfg, paddle_model, self.paddle_sched)
        self.name_map = {n: torch_key_to_paddle(n) for n, _ in torch_model.named_parameters()}

    def step(self, inputs: Sequence[np.ndarray], labels: np.ndarray
             ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """One optimizer step on both sides; returns {loss, lr, grad.<name>} per side."""
        import paddle
        import torch

        from torch_ref.engine.optim import clip_gradients

        self.torch_opt.zero_grad()
        torch_loss = self.torch_loss(self.torch_model(*[torch.from_numpy(x) for x in inputs]),
                                     torch.from_numpy(labels))
        torch_loss.backward()
        torch_values = {"loss": np.array(torch_loss.item()),
                        "lr": np.array(self.torch_opt.param_groups[0]["lr"])}
        for name, param in self.torch_model.named_parameters():
            if param.grad is not None:
                torch_values[f"grad.{name}"] = param.grad.numpy().copy()
        clip_gradients(self.optimizer_cfg, self.torch_model)
        self.torch_opt.step()
        self.torch_sched.step()

        paddle_loss = self.paddle_loss(self.paddle_model(*[paddle.to_tensor(x) for x in inputs]),
                                       paddle.to_tensor(labels))
        paddle_loss.backward()
        paddle_values = {"loss": np.array(float(paddle_loss)), "lr": np.array(self.paddle_opt.get_lr())}
        params = dict(self.paddle_model.named_parameters())
        for torch_name, paddle_name in self.name_map.items():
            grad = params[paddle_name].grad
            if grad is not None:
                paddle_values[f"grad.{torch_name}"] = grad.numpy().copy()
        self.paddle_opt.step()
        self.paddle_opt.clear_grad()
        self.paddle_sched.step()
        return torch_values, paddle_values

    def weights(self) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        params = dict(self.paddle_model.named_parameters())
        torch_w = {n: p.detach().numpy().copy() for n, p in self.torch_model.named_parameters()}
        paddle_w = {}
        for n, paddle_name in self.name_map.items():
            value = params[paddle_name].numpy()
            paddle_w[n] = value.T if value.ndim == 2 and value.shape != torch_w[n].shape else value
        return torch_w, paddle_w


def split_loss_and_grads(values: Dict[str, np.ndarray]) -> Tuple[Dict, Dict]:
    scalars = {k: v for k, v in values.items() if not k.startswith("grad.")}
    grads = {k: v for k, v in values.items() if k.startswith("grad.")}
    return scalars, grads


def linear_grad_fix(torch_values: Dict[str, np.ndarray], paddle_values: Dict[str, np.ndarray]) -> None:
    """Paddle Linear weights (and their grads) are [in, out]; compare in torch's layout."""
    for key, value in list(paddle_values.items()):
        ref = torch_values.get(key)
        if ref is not None and value.ndim == 2 and value.shape == ref.shape[::-1] and value.shape != ref.shape:
            paddle_values[key] = value.T


def zero_grad_row(name: str, reason: str, torch_grad: np.ndarray, paddle_grad: np.ndarray,
                  scale: float):
    """Both sides must be at rounding-noise level for an analytically zero gradient."""
    from .harness import Row

    worst = float(max(np.abs(torch_grad).max(), np.abs(paddle_grad).max()))
    diff = np.abs(torch_grad.astype(np.float64) - paddle_grad)
    return Row(name, float(diff.max()), float(diff.mean()), scale, 0.0,
               "analytically zero: both |grad| <= 1e-6*max model grad", worst <= 1e-6 * scale,
               note=f"{reason}; largest |grad| {worst:.2e} vs model max {scale:.2e}")


def step_rows(step_index: int, torch_values, paddle_values, loss_bar, grad_bar,
              zero_grads: Mapping[str, str] | None = None) -> List:
    zero_grads = dict(zero_grads or {})
    linear_grad_fix(torch_values, paddle_values)
    scale = max((float(np.abs(v).max()) for k, v in torch_values.items() if k.startswith("grad.")),
                default=0.0)
    rows = [loss_bar(f"step{step_index}.loss", torch_values["loss"], paddle_values["loss"])]
    missing = sorted(set(torch_values) ^ set(paddle_values))
    if missing:
        from .harness import Row

        rows.append(Row(f"step{step_index}.grad-presence", float("inf"), float("inf"), 0, 0,
                        f"gradient on one side only: {missing[:5]}", False))
    for key in torch_values:
        if not key.startswith("grad.") or key not in paddle_values:
            continue
        name = f"step{step_index}.{key}"
        param = key[len("grad."):]
        if param in zero_grads:
            rows.append(zero_grad_row(name, zero_grads[param], torch_values[key], paddle_values[key], scale))
        else:
            rows.append(grad_bar(name, torch_values[key], paddle_values[key]))
    return rows
