"""The contrastive model: one encoder and one projection head per modality column into
a shared, L2-normalised embedding space (CLIP's two towers, ImageBind's several)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from polymodal.data.dataset import Batch
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.cache import CachedEncoder
from polymodal.model import module_key


class EmbeddingHead(nn.Module):
    """An encoder's pooled output to the shared space: linear (LiT, CLIP) or a two-layer
    MLP (SimCLR's projection head), then L2-normalised."""

    def __init__(self, in_dim: int, dim: int, kind: str = "mlp") -> None:
        super().__init__()
        if kind == "linear":
            self.net: nn.Module = nn.Linear(in_dim, dim)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, dim))
        else:
            raise ValueError(f"unknown projection {kind!r}; use 'linear' or 'mlp'")

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(pooled), dim=-1)


class ContrastiveModel(nn.Module):
    """Encoders and embedding heads keyed by modality column (sorted).

    Args:
        encoders: column -> encoder.
        dim: the shared embedding size.
        projection: "mlp" or "linear" heads.
        cached: columns whose inputs are cached encoder outputs (frozen towers).
    """

    def __init__(self, encoders: Mapping[str, ModalityEncoder], dim: int,
                 projection: str = "mlp", cached: set[str] | None = None) -> None:
        super().__init__()
        self.columns = sorted(encoders)
        self.encoders = nn.ModuleDict({module_key(c): encoders[c] for c in self.columns})
        self.heads = nn.ModuleDict({module_key(c): EmbeddingHead(encoders[c].output_dim, dim,
                                                                 projection)
                                    for c in self.columns})
        self.dim = dim
        self.cached = set(cached or ())
        self._cached_view = {c: CachedEncoder(encoders[c]) for c in self.cached}

    def encoder(self, column: str) -> ModalityEncoder:
        return self.encoders[module_key(column)]  # type: ignore[return-value]

    def embed_column(self, column: str, inputs: torch.Tensor | list[str],
                     lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, dim) normalised embeddings of one column's collated inputs."""
        if column in self.cached:
            out = self._cached_view[column](inputs, lengths)  # type: ignore[arg-type]
        else:
            out = self.encoder(column)(inputs, lengths)
        return self.heads[module_key(column)](out.pooled)

    def forward(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per column: the embeddings (zeros where the batch has no such cell) and the
        presence mask."""
        embeddings, present = {}, {}
        for c in self.columns:
            inputs = batch.inputs[c]
            if not bool(batch.present[c].any()):
                device = next(self.heads[module_key(c)].parameters()).device
                embeddings[c] = torch.zeros(len(batch), self.dim, device=device)
                present[c] = torch.zeros(len(batch), dtype=torch.bool, device=device)
                continue
            embeddings[c] = self.embed_column(c, inputs, batch.lengths.get(c))
            present[c] = batch.present[c].to(embeddings[c].device)
        return embeddings, present
