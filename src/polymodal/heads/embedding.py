"""The embedding head of the contrastive task: a tower's pooled output into the shared,
L2-normalised space."""

from __future__ import annotations

import torch
from torch import nn

from polymodal.registry import Registry

#: how a tower's pooled output reaches the shared space
PROJECTIONS: Registry[type[nn.Module]] = Registry("projection")


class EmbeddingHead(nn.Module):
    """An encoder's pooled output to the shared space: linear (LiT, CLIP) or a two-layer
    MLP (SimCLR's projection head), then L2-normalised."""

    def __init__(self, in_dim: int, dim: int, kind: str = "mlp") -> None:
        super().__init__()
        self.net: nn.Module = PROJECTIONS.get(kind)(in_dim, dim)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(pooled), dim=-1)


@PROJECTIONS.register("linear")
def _linear(in_dim: int, dim: int) -> nn.Module:
    return nn.Linear(in_dim, dim)


@PROJECTIONS.register("mlp")
def _mlp(in_dim: int, dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, dim))
