"""Position and channel attention modules of DANet (Fu et al., CVPR 2019).

Names follow the official code (``query_conv``, ``key_conv``, ``value_conv``, ``gamma``) so that
official checkpoints load unchanged.

``PAM_Module(in_dim, query_chunk=n)`` computes the same attention ``n`` query rows at a time: the
softmax is taken per row, so the result is exact (up to matmul summation order, ~1e-7 relative in
float32) while the live energy matrix shrinks from N x N to n x N. ``set_pam_query_chunk`` switches a
built model. Gradients flow through the chunks by plain autograd (no recomputation), so training keeps
every chunk's attention for backward and saves no memory; the saving is for inference.
"""

from __future__ import annotations

import torch
from torch import nn


class PAM_Module(nn.Module):
    """Position attention: every position attends to all H*W positions.

    energy = Q^T K (B x N x N), attention = softmax over the last axis,
    out = V attention^T, result = gamma * out + x with gamma initialised to 0.
    ``query_chunk``: if set, the attention is computed that many query rows at a time (exact; bounds
    the energy matrix to query_chunk x N). None (default) is the official single N x N product.
    """

    def __init__(self, in_dim: int, query_chunk: int | None = None) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.query_chunk = _check_chunk(query_chunk)
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)  # b, n, c/8
        key = self.key_conv(x).view(b, -1, h * w)  # b, c/8, n
        value = self.value_conv(x).view(b, -1, h * w)  # b, c, n
        if self.query_chunk is None:
            attention = self.softmax(torch.bmm(query, key))  # b, n, n
            out = torch.bmm(value, attention.permute(0, 2, 1))
        else:
            out = torch.cat([self._rows(query[:, start:start + self.query_chunk], key, value)
                             for start in range(0, h * w, self.query_chunk)], dim=2)
        return self.gamma * out.view(b, c, h, w) + x

    def _rows(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        attention = self.softmax(torch.bmm(query, key))  # b, m, n
        return torch.bmm(value, attention.permute(0, 2, 1))  # b, c, m


class CAM_Module(nn.Module):
    """Channel attention: every channel attends to all C channels (no convolutions).

    energy = X X^T (B x C x C); the official code subtracts it from its row maximum before the
    softmax (so channels that are *less* similar get more weight); out = attention X.

    Args:
        in_dim: number of channels C.
        detach_max: stop the gradient through the row maximum. Default False: the reference keeps the
            official graph. The Paddle twin defaults to True (exact, see its docstring); the alignment
            checks compare the two defaults, so they prove the detached form against the official one.
    """

    def __init__(self, in_dim: int, detach_max: bool = False) -> None:
        super().__init__()
        self.chanel_in = in_dim
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)
        self.detach_max = detach_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.view(b, c, -1)  # b, c, n
        energy = torch.bmm(flat, flat.permute(0, 2, 1))  # b, c, c
        row_max = torch.max(energy, -1, keepdim=True)[0]
        if self.detach_max:
            row_max = row_max.detach()
        attention = self.softmax(row_max.expand_as(energy) - energy)
        out = torch.bmm(attention, flat).view(b, c, h, w)
        return self.gamma * out + x


def _check_chunk(query_chunk: int | None) -> int | None:
    if query_chunk is not None and (isinstance(query_chunk, bool) or not isinstance(query_chunk, int)
                                    or query_chunk < 1):
        raise ValueError(f"query_chunk must be None or a positive int, got {query_chunk!r}")
    return query_chunk


def set_pam_query_chunk(model: nn.Module, query_chunk: int | None) -> int:
    """Set ``query_chunk`` on every PAM_Module in ``model``; returns how many were changed."""
    query_chunk = _check_chunk(query_chunk)
    modules = [m for m in model.modules() if isinstance(m, PAM_Module)]
    for module in modules:
        module.query_chunk = query_chunk
    return len(modules)
