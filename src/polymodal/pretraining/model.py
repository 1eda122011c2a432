"""The contrastive model: per-column towers, each with an embedding head into a shared,
L2-normalised space (CLIP's two towers, ImageBind's several)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from polymodal.data.dataset import Batch
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.towers import Towers
from polymodal.fusion.base import module_key
from polymodal.heads import EmbeddingHead

__all__ = ["ContrastiveModel", "EmbeddingHead"]


class ContrastiveModel(Towers):
    """Towers and embedding heads keyed by modality column (sorted).

    Args:
        encoders: column -> encoder.
        dim: the shared embedding size.
        projection: "mlp" or "linear" heads.
        cached: columns whose inputs are cached encoder outputs (frozen towers).
    """

    def __init__(self, encoders: Mapping[str, ModalityEncoder], dim: int,
                 projection: str = "mlp", cached: set[str] | None = None) -> None:
        super().__init__(encoders, cached)
        self.heads = nn.ModuleDict({module_key(c): EmbeddingHead(encoders[c].output_dim, dim,
                                                                 projection)
                                    for c in self.columns})
        self.dim = dim

    def embed_column(self, column: str, inputs: torch.Tensor | list[str],
                     lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, dim) normalised embeddings of one column's collated inputs."""
        return self.heads[module_key(column)](self.run_tower(column, inputs, lengths).pooled)

    def forward(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per column: the embeddings (zeros where the batch has no such cell) and the
        presence mask."""
        embeddings, present = {}, {}
        for c in self.columns:
            if not bool(batch.present[c].any()):
                device = next(self.heads[module_key(c)].parameters()).device
                embeddings[c] = torch.zeros(len(batch), self.dim, device=device)
                present[c] = torch.zeros(len(batch), dtype=torch.bool, device=device)
                continue
            embeddings[c] = self.embed_column(c, batch.inputs[c], batch.lengths.get(c))
            present[c] = batch.present[c].to(embeddings[c].device)
        return embeddings, present
