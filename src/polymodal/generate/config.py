"""The settings of a :class:`~polymodal.generate.Captioner` as data (YAML, dotted
overrides, saved with the model), in the form of :mod:`polymodal.config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CaptionerConfig:
    """The settings of a :class:`~polymodal.generate.Captioner` (see its arguments)."""

    image: str | None = None
    text: str = "caption"
    layers: int = 2
    heads: int = 4
    max_length: int = 24
    min_count: int = 1
    dropout: float = 0.1
    length_penalty: float = 0.0
    decoder: str = "scratch"
    fine_tune: bool = False
    question: str | None = None
    max_question_length: int = 16
    encoders: dict[str, Any] = field(default_factory=dict)
    preset: str = "pretrained"
    dim: int | None = None
    max_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    seed: int = 0
    path: str | None = None
    cache_dir: str | None = None
    precision: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    memory_cache_mb: float = 1024
    media_cache: str | None = "auto"
