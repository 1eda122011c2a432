"""The encoder contract: from a decoded cell to features, from features to vectors.

A :class:`ModalityEncoder` has two halves:

- ``preprocess(value) -> features``: CPU work on one decoded cell (a Pillow image, a
  float32 waveform, a string), picklable, run in DataLoader workers. Its outputs are
  batched by :func:`polymodal.data.collate_examples` (stacked, or padded on the last
  dimension with the true ``lengths`` kept).
- ``forward(inputs, lengths=None) -> Encoded``: the batch to token features
  ``(B, T, d)`` with a mask ``(B, T)`` and a pooled ``(B, d)``.

Encoders that learn from the data before training (a vocabulary, TF-IDF weights)
implement ``fit(values)``; the others inherit a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn


class Encoded(NamedTuple):
    """An encoder's output: token features, their mask, and one pooled vector per row."""

    tokens: torch.Tensor  # (B, T, d)
    mask: torch.Tensor  # (B, T) bool, True where a token is real
    pooled: torch.Tensor  # (B, d)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens of each row; zeros for a row with none."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def lengths_to_mask(lengths: torch.Tensor | None, size: int, batch: int,
                    device: torch.device | None = None) -> torch.Tensor:
    """(B, size) bool mask, True for positions < length (all True without lengths)."""
    if lengths is None:
        return torch.ones(batch, size, dtype=torch.bool, device=device)
    positions = torch.arange(size, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def single_token(pooled: torch.Tensor) -> Encoded:
    """An output with one token per row: the pooled vector itself."""
    mask = torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
    return Encoded(pooled.unsqueeze(1), mask, pooled)


class ModalityEncoder(nn.Module):
    """Base class of every encoder. Subclasses set ``modality`` and ``output_dim``.

    Attributes:
        modality: "text", "image" or "audio".
        output_dim: size ``d`` of the token and pooled features.
        pretrained: whether weights come from elsewhere (not learned here).
        trainable: False for a frozen encoder, whose outputs may be cached.
    """

    modality: ClassVar[str] = ""
    pretrained: ClassVar[bool] = False
    output_dim: int

    def __init__(self) -> None:
        super().__init__()
        self.trainable = True

    # -- data side ----------------------------------------------------------------
    def fit(self, values: Iterable[Any]) -> ModalityEncoder:
        """Learn what must be learned from the training values before training (a
        vocabulary, TF-IDF weights). Empty cells (None) are skipped. Default: nothing."""
        return self

    @property
    def is_fitted(self) -> bool:
        """False while ``fit`` still has to learn something (a vocabulary)."""
        return True

    def preprocess(self, value: Any) -> Any:
        """One decoded cell to the features ``forward`` takes (CPU, picklable)."""
        return value

    # -- model side ---------------------------------------------------------------
    def forward(self, inputs: Any, lengths: torch.Tensor | None = None) -> Encoded:
        raise NotImplementedError

    def freeze(self) -> ModalityEncoder:
        """Stop training this encoder (its outputs become cacheable)."""
        self.trainable = False
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        return self

    def train(self, mode: bool = True) -> ModalityEncoder:
        """A frozen encoder stays in eval mode (no dropout, fixed BatchNorm statistics)
        even when the model around it trains."""
        return super().train(mode and self.trainable)

    def unfreeze(self) -> ModalityEncoder:
        self.trainable = True
        for p in self.parameters():
            p.requires_grad_(True)
        return self

    def encode(self, values: list[Any]) -> Encoded:
        """Preprocess and encode a list of decoded cells in one batch (convenience)."""
        from polymodal.data.dataset import collate_column

        feats = [None if v is None else self.preprocess(v) for v in values]
        batch, _present, lengths = collate_column(feats)
        device = next(iter(self.parameters()), torch.empty(0)).device
        if isinstance(batch, torch.Tensor):
            batch = batch.to(device)
            lengths = lengths.to(device) if lengths is not None else None
        return self(batch, lengths)

    def fingerprint(self) -> str:
        """A string that changes whenever this encoder's outputs may change: class,
        settings and a digest of its weights. Keys the feature cache."""
        import hashlib

        h = hashlib.sha256(type(self).__qualname__.encode())
        h.update(repr(sorted(self.config().items())).encode())
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            if not isinstance(tensor, torch.Tensor):  # extra state: a vocabulary, say
                h.update(repr(tensor).encode())
                continue
            t = tensor.detach().cpu().contiguous().reshape(-1)
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()[:20]

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this encoder (saved beside weights)."""
        return {}
