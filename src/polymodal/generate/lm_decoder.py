"""A pretrained causal language model as the captioner's decoder, prefix-conditioned
(ClipCap, Mokady et al. 2021): the picture tower's pooled vector and grid tokens,
projected to the language model's embedding width, come before the caption's token
embeddings, and the language model writes on from them. The language model is any
Hugging Face causal LM that ``AutoModelForCausalLM`` loads from this machine (a name
already in its cache, or a folder saved with ``save_pretrained``); nothing downloads.
Its weights are frozen unless asked to fine-tune; the projection always trains."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polymodal.data.dataset import Batch
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.towers import Towers
from polymodal.generate.decoder import never_written

#: the decoder setting that means the Transformer trained from scratch
SCRATCH = "scratch"


def lm_source(decoder: str | os.PathLike[str]) -> str:
    """Where a language model is read from: a folder that exists, as an absolute path
    (so a saved captioner finds it from another working folder), else the name."""
    path = Path(decoder).expanduser()
    return str(path.resolve()) if path.is_dir() else str(decoder)


def load_language_model(decoder: str | os.PathLike[str]) -> tuple[Any, Any]:
    """(causal LM, its tokenizer) from this machine only (``local_files_only``).

    Raises:
        ValueError: no such model here, named, saying it must be present locally.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    source = lm_source(decoder)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        if Path(source).is_dir():  # a folder without a model or tokenizer in it
            where = " ".join(str(exc).split())[:200]
        elif any(c in str(decoder) for c in "/\\") or str(decoder).startswith("."):
            where = "no such folder"
        else:
            where = "not in this machine's Hugging Face cache"
        raise ValueError(
            f"decoder {str(decoder)!r}: no causal language model found on this machine "
            f"({where}); it must be present locally, as a folder written by "
            "save_pretrained (model and tokenizer) or a name already in the Hugging Face "
            "cache: nothing is downloaded at run time") from None
    finally:
        logging.set_verbosity(verbosity)
    return lm, tokenizer


class _Parts(nn.Module):
    """Modules saved together; a weight that two names share is copied for the second
    (safetensors refuses tensors that share memory), and loads into both again."""

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        state = super().state_dict(*args, **kwargs)
        seen: set[int] = set()
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                if value.data_ptr() in seen:
                    state[key] = value.clone()
                seen.add(value.data_ptr())
        return state


class LMCaptionModel(Towers):
    """One picture column's tower, a projection of its outputs into a language model's
    embedding space (the prefix), and the language model.

    Args:
        encoders: the picture column -> its encoder (one entry).
        lm: a causal LM (``transformers``), with input embeddings and logits.
        max_length: the longest caption in tokens.
        fine_tune: train the language model's weights too (default: frozen, and kept
            in eval mode, so its dropout is off).
        never: ids search never writes.
        cached: columns whose inputs are cached tower outputs (a frozen tower).
    """

    def __init__(self, encoders: Mapping[str, ModalityEncoder], lm: nn.Module, *,
                 max_length: int = 24, fine_tune: bool = False,
                 never: tuple[int, ...] = (), cached: set[str] | None = None) -> None:
        super().__init__(encoders, cached)
        if len(self.columns) != 1:
            raise ValueError(f"a caption model reads one picture column, got {self.columns}")
        self.column, self.max_length = self.columns[0], max_length
        self.fine_tune, self.never = fine_tune, tuple(never)
        width = lm.get_input_embeddings().embedding_dim
        self.project = nn.Sequential(nn.Linear(self.encoder(self.column).output_dim, width),
                                     nn.GELU(), nn.Linear(width, width))
        self.source_type = nn.Parameter(torch.zeros(2, width))  # pooled vector, grid token
        self.lm = lm
        if not fine_tune:
            lm.requires_grad_(False)
            lm.eval()

    def train(self, mode: bool = True) -> LMCaptionModel:
        """Train mode for the parts that train; a frozen language model stays in eval."""
        super().train(mode)
        if not self.fine_tune:
            self.lm.eval()
        return self

    def loaded_elsewhere(self, key: str) -> bool:
        """Is state ``key`` a frozen language model's (left out of training checkpoints
        as of a saved captioner: it loads from its name or folder)?"""
        return not self.fine_tune and key.startswith("lm.")

    def trained_parts(self) -> nn.Module:
        """The module a saved captioner holds: everything but a frozen language model
        (which loads from its name or folder again); a fine-tuned one's tied weights
        (GPT-2's input and output embeddings) saved once under each name."""
        parts = _Parts()
        for name, child in self.named_children():
            if name != "lm" or self.fine_tune:
                parts.add_module(name, child)
        parts.source_type = self.source_type
        return parts

    def memory(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefix for a batch of collated pictures: (B, 1 + T, width) (the pooled
        vector, then the grid tokens) and its padding mask (True where padding)."""
        out = self.run_tower(self.column, inputs, lengths)
        tokens = torch.cat([out.pooled[:, None], out.tokens], dim=1)
        real = torch.cat([torch.ones_like(out.mask[:, :1]), out.mask], dim=1)
        kinds = torch.ones(tokens.shape[1], dtype=torch.long, device=tokens.device)
        kinds[0] = 0
        return self.project(tokens.float()) + self.source_type[kinds], ~real

    def logits(self, ids: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor
               ) -> torch.Tensor:
        """(B, L, vocab) next-token logits after each prefix of ``ids`` (B, L), the
        picture's prefix before them."""
        embed = self.lm.get_input_embeddings()
        words = embed(ids)
        x = torch.cat([memory.to(words.dtype), words], dim=1)
        mask = torch.cat([~memory_padding, torch.ones_like(ids, dtype=torch.bool)], dim=1)
        out = self.lm(inputs_embeds=x, attention_mask=mask.long(), use_cache=False)
        return out.logits[:, memory.shape[1]:]

    def next_log_probs(self, ids: torch.Tensor, memory: torch.Tensor,
                       memory_padding: torch.Tensor) -> torch.Tensor:
        """(B, vocab) log-probabilities of the token after each prefix ``ids``, those
        never written at minus infinity (not renormalised)."""
        logp = torch.log_softmax(self.logits(ids, memory, memory_padding)[:, -1].float(),
                                 dim=-1)
        return never_written(logp, self.never)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Teacher-forced logits (B, T - 1, vocab) for ``batch.labels`` (B, 2, T)."""
        memory, padding = self.memory(batch.inputs[self.column],
                                      batch.lengths.get(self.column))
        return self.logits(batch.labels[:, 0, :-1], memory, padding)
