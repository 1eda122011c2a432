"""The supervised model: per-column towers + projections + fusion + task head
(MultiBench's MMDL, TorchMultimodal's ``LateFusion``).

Inputs are a :class:`~polymodal.data.Batch`; each modality column has its encoder
(or, for a frozen encoder whose outputs are cached, the cached features) and a
projection to the shared size; a fusion combines them; a head maps to outputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from polymodal.data.dataset import Batch
from polymodal.encoders.base import Encoded, ModalityEncoder
from polymodal.encoders.towers import Towers
from polymodal.fusion import build_fusion, fusion_class, modality_dropout
from polymodal.fusion.base import module_key
from polymodal.heads import TaskHead
from polymodal.representation import Projection

__all__ = ["MultimodalModel", "module_key"]


class MultimodalModel(Towers):
    """Towers, projections, fusion and head, keyed by modality column (sorted).

    Args:
        encoders: column -> encoder.
        fusion: a fusion name ("concat", "late", "gated", "attention", "tensor", "lowrank").
        dim: the shared size every column is projected to.
        n_outputs: the head's outputs (``Task.n_outputs``).
        cached: columns whose inputs are cached encoder outputs (frozen encoders).
        drop_modality: modality dropout probability during training.
        fusion_options: extra arguments of the fusion.
    """

    def __init__(self, encoders: Mapping[str, ModalityEncoder], fusion: str, dim: int,
                 n_outputs: int, *, cached: set[str] | None = None,
                 drop_modality: float = 0.0, fusion_options: dict[str, Any] | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__(encoders, cached)
        self.projections = torch.nn.ModuleDict({
            module_key(c): Projection(encoders[c].output_dim, dim, dropout=dropout)
            for c in self.columns})
        options = dict(fusion_options or {})
        if "dropout" in inspect.signature(fusion_class(fusion)).parameters:
            options.setdefault("dropout", dropout)
        self.fusion = build_fusion(fusion, self.columns, dim, **options)
        self.head = TaskHead(self.fusion.out_dim, n_outputs, dropout=dropout)
        self.drop_modality = drop_modality

    def encode(self, batch: Batch) -> tuple[dict[str, Encoded], dict[str, torch.Tensor]]:
        """Per column: the projected encoder output, and the presence mask."""
        encoded, present = {}, {}
        for c in self.columns:
            if not bool(batch.present[c].any()):  # no row of the batch has this column
                encoded[c], present[c] = self._absent(c, len(batch))
                continue
            out = self.run_tower(c, batch.inputs[c], batch.lengths.get(c))
            encoded[c] = self.projections[module_key(c)](out)
            present[c] = batch.present[c].to(out.pooled.device)
        if self.training and self.drop_modality > 0:
            present = modality_dropout(present, self.drop_modality)
        return encoded, present

    def _absent(self, column: str, batch_size: int) -> tuple[Encoded, torch.Tensor]:
        proj = self.projections[module_key(column)]
        d, device = proj.linear.out_features, proj.linear.weight.device
        zeros = torch.zeros(batch_size, d, device=device)
        return (Encoded(zeros[:, None], torch.zeros(batch_size, 1, dtype=torch.bool,
                                                    device=device), zeros),
                torch.zeros(batch_size, dtype=torch.bool, device=device))

    def embed(self, batch: Batch) -> torch.Tensor:
        """The fused representation (B, d)."""
        return self.fusion(*self.encode(batch))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.embed(batch))
