"""The task head: the fused representation to logits or values."""

from __future__ import annotations

import torch
from torch import nn


class TaskHead(nn.Module):
    """A small MLP head: ``(B, in_dim) -> (B, n_outputs)`` (``Task.n_outputs``)."""

    def __init__(self, in_dim: int, n_outputs: int, hidden: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Dropout(dropout),
                                 nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
