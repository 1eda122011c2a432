"""Per-column towers: one encoder per modality column, run live or read from the cache
of its outputs. The common part of every model polymodal trains (the fused supervised
model and the contrastive one)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from polymodal.encoders.base import Encoded, ModalityEncoder
from polymodal.encoders.cache import CachedEncoder
from polymodal.fusion.base import module_key


class Towers(nn.Module):
    """Encoders keyed by modality column (``columns``, sorted).

    Args:
        encoders: column -> encoder.
        cached: columns whose inputs are cached encoder outputs (frozen encoders);
            set ``cached`` to an empty set to run every encoder live again (inference
            on new files).
    """

    def __init__(self, encoders: Mapping[str, ModalityEncoder],
                 cached: set[str] | None = None) -> None:
        super().__init__()
        self.columns = sorted(encoders)
        self.encoders = nn.ModuleDict({module_key(c): encoders[c] for c in self.columns})
        self.cached = set(cached or ())
        self._cached_view = {c: CachedEncoder(encoders[c]) for c in self.cached}

    def encoder(self, column: str) -> ModalityEncoder:
        """The encoder of ``column``."""
        return self.encoders[module_key(column)]  # type: ignore[return-value]

    def run_tower(self, column: str, inputs: torch.Tensor | list[str],
                  lengths: torch.Tensor | None = None) -> Encoded:
        """``column``'s encoder output for a batch of its collated inputs (its cached
        features where it is cached)."""
        if column in self.cached:
            return self._cached_view[column](inputs, lengths)  # type: ignore[arg-type]
        return self.encoder(column)(inputs, lengths)
