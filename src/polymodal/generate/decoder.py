"""The captioning model: a picture's tower (frozen and cached, or trained) gives its
pooled vector and grid of tokens; a small Transformer decoder, trained here from
scratch, writes the caption word by word while cross-attending to them (the
"Show, Attend and Tell" idea with a Transformer, as in the decoders of BLIP or
GIT, at a size a CPU trains in minutes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.data.dataset import Batch
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.towers import Towers
from polymodal.generate.tokens import BOS, PAD, UNK
from polymodal.objectives.step import Step

#: tokens that search never writes
NEVER_WRITTEN = (PAD, BOS, UNK)


class CaptionModel(Towers):
    """One picture column's tower, a projection of its outputs to ``dim`` and a
    Transformer decoder over a word vocabulary.

    Args:
        encoders: the picture column -> its encoder (one entry).
        vocab_size: words + special tokens.
        dim: the decoder's width (``heads`` must divide it).
        layers: decoder layers.
        heads: attention heads.
        max_length: the longest caption in tokens.
        dropout: dropout in the decoder.
        cached: columns whose inputs are cached tower outputs (a frozen tower).
        positions: the longest input the decoder reads (a question's prompt and the
            caption); default ``max_length`` + 1 (no question).
        never: ids search never writes (default ``<pad>``, ``<bos>``, ``<unk>``).
    """

    def __init__(self, encoders: Mapping[str, ModalityEncoder], vocab_size: int, dim: int,
                 *, layers: int = 2, heads: int = 4, max_length: int = 24,
                 dropout: float = 0.1, cached: set[str] | None = None,
                 positions: int | None = None,
                 never: tuple[int, ...] = NEVER_WRITTEN) -> None:
        super().__init__(encoders, cached)
        if len(self.columns) != 1:
            raise ValueError(f"a caption model reads one picture column, got {self.columns}")
        if dim % heads:
            raise ValueError(f"the decoder's width {dim} is not a multiple of its {heads} "
                             "attention heads; choose dim or heads so that it is")
        self.column = self.columns[0]
        self.max_length = max_length
        self.positions = max_length + 1 if positions is None else positions
        self.never = tuple(never)
        self.project = nn.Sequential(nn.Linear(self.encoder(self.column).output_dim, dim),
                                     nn.LayerNorm(dim))
        self.source_type = nn.Parameter(torch.zeros(2, dim))  # pooled vector, grid token
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.position = nn.Embedding(self.positions, dim)
        layer = nn.TransformerDecoderLayer(dim, heads, 4 * dim, dropout, batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.embed.weight, std=dim ** -0.5)

    def memory(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the decoder attends to for a batch of collated pictures: (B, 1 + T,
        dim) (the pooled vector, then the grid tokens) and its padding mask (True where
        a position is padding)."""
        out = self.run_tower(self.column, inputs, lengths)
        tokens = torch.cat([out.pooled[:, None], out.tokens], dim=1)
        real = torch.cat([torch.ones_like(out.mask[:, :1]), out.mask], dim=1)
        kinds = torch.ones(tokens.shape[1], dtype=torch.long, device=tokens.device)
        kinds[0] = 0
        memory = self.project(tokens.float()) + self.source_type[kinds]
        return memory, ~real

    def logits(self, ids: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor
               ) -> torch.Tensor:
        """(B, L, vocab) next-word logits after each prefix of ``ids`` (B, L)."""
        length = ids.shape[1]
        if length > self.positions:
            raise ValueError(f"a caption of {length} tokens is past this model's limit "
                             f"of {self.positions}")
        positions = torch.arange(length, device=ids.device)
        x = self.embed(ids) + self.position(positions)[None]
        causal = torch.triu(torch.full((length, length), float("-inf"), device=ids.device),
                            diagonal=1)
        h = self.decoder(x, memory, tgt_mask=causal, memory_key_padding_mask=memory_padding)
        return F.linear(self.norm(h), self.embed.weight)  # the input embedding, tied

    def next_log_probs(self, ids: torch.Tensor, memory: torch.Tensor,
                       memory_padding: torch.Tensor) -> torch.Tensor:
        """(B, vocab) log-probabilities of the word after each prefix ``ids``, the
        tokens a caption never holds (``<pad>``, ``<bos>``, ``<unk>``) at minus infinity
        (not renormalised: a caption's score stays its likelihood under the model)."""
        logp = torch.log_softmax(self.logits(ids, memory, memory_padding)[:, -1].float(),
                                 dim=-1)
        return never_written(logp, self.never)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Teacher-forced logits (B, T - 1, vocab) for the sequences in
        ``batch.labels`` (B, 2, T): ids, and where the loss is (see
        :meth:`Wording.target <polymodal.generate.wording.Wording.target>`)."""
        memory, padding = self.memory(batch.inputs[self.column],
                                      batch.lengths.get(self.column))
        return self.logits(batch.labels[:, 0, :-1], memory, padding)


def never_written(logp: torch.Tensor, never: tuple[int, ...]) -> torch.Tensor:
    """``logp`` (B, vocab) with the ids of ``never`` at minus infinity."""
    if not never:
        return logp
    return logp.index_fill(1, torch.tensor(never, device=logp.device), float("-inf"))


def sequence_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) log-likelihood of the caption part of each sequence of ``labels`` (B, 2, T)
    under teacher-forced ``logits`` (B, T - 1, vocab)."""
    logp = torch.log_softmax(logits.float(), -1)
    picked = logp.gather(-1, labels[:, 0, 1:, None])[..., 0]
    return (picked * labels[:, 1, 1:]).sum(-1)


class CaptionLoss(nn.Module):
    """Cross-entropy of each next caption token (the prompt and padding left out),
    with the share of tokens guessed right, per epoch."""

    def step(self, model: nn.Module, batch: Batch, stage: str) -> Step:
        """One batch's loss and logs."""
        logits = model(batch)
        targets = batch.labels[:, 0, 1:]
        real = batch.labels[:, 1, 1:].bool()
        loss = F.cross_entropy(logits[real].float(), targets[real])
        right = ((logits.argmax(-1) == targets) & real).sum() / real.sum().clamp(min=1)
        logs = {f"{stage}_loss": loss, f"{stage}_word_acc": right.float()}
        return Step(loss, logs, shown=tuple(logs))

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameters of the objective itself: none."""
        return []
