"""The shared representation: a projection that brings every modality column to one size
(the stage between feature extraction and fusion)."""

from __future__ import annotations

import torch
from torch import nn

from polymodal.encoders.base import Encoded


class Projection(nn.Module):
    """Linear map of an encoder's tokens and pooled vector to ``dim``, optionally
    L2-normalised (for contrastive objectives), with dropout.

    Args:
        in_dim: the encoder's ``output_dim``.
        dim: the model's shared size.
        normalize: L2-normalise the projected vectors.
        dropout: dropout before the linear map.
    """

    def __init__(self, in_dim: int, dim: int, normalize: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if in_dim <= 0:
            raise ValueError(f"in_dim must be positive, got {in_dim} (was the encoder fitted?)")
        self.linear = nn.Linear(in_dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.normalize = normalize

    def _map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(self.dropout(x))
        return nn.functional.normalize(x, dim=-1) if self.normalize else x

    def forward(self, encoded: Encoded) -> Encoded:
        return Encoded(self._map(encoded.tokens), encoded.mask, self._map(encoded.pooled))
