"""Encoders by name: the same names in Python, YAML configs and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polymodal.encoders.base import ModalityEncoder
from polymodal.registry import Registry


@dataclass(frozen=True)
class EncoderInfo:
    """A registered encoder: how to build it and what it is."""

    name: str
    modality: str
    factory: Callable[..., ModalityEncoder]
    description: str
    pretrained: bool
    offline: Callable[[], bool]  # can its default weights load here, with no network?
    output_dim: int | str  # a number, or what sets it ("vocabulary", "model")
    needs: str | None = None  # the argument a user must give, e.g. "model=NAME_OR_FOLDER"


#: the modules whose import registers the builtin encoders
ENCODER_MODULES = tuple(f"polymodal.encoders.{m}" for m in (
    "audio", "audio_whisper", "audio_heard", "bridge", "handcrafted", "image", "text_transformers",
    "text"))
#: every encoder by name; the encoder modules are imported at the first lookup
ENCODERS: Registry[EncoderInfo] = Registry("encoder", modules=ENCODER_MODULES)


def _always() -> bool:
    return True


def register_encoder(name: str, *, modality: str, description: str, pretrained: bool = False,
                     offline: Callable[[], bool] = _always, output_dim: int | str = 128,
                     needs: str | None = None) -> Callable[[Callable[..., ModalityEncoder]],
                                   Callable[..., ModalityEncoder]]:
    """Register a class or factory under ``name`` (a decorator; a name registered
    twice is refused)."""
    def wrap(factory: Callable[..., ModalityEncoder]) -> Callable[..., ModalityEncoder]:
        ENCODERS.add(name, EncoderInfo(name, modality, factory, description, pretrained,
                                       offline, output_dim, needs))
        return factory
    return wrap


def list_encoders(modality: str | None = None) -> list[EncoderInfo]:
    """Every registered encoder (of one modality), sorted by modality then name."""
    infos = [i for i in ENCODERS.values() if modality is None or i.modality == modality]
    return sorted(infos, key=lambda i: (i.modality, i.name))


def build_encoder(name: str, **kwargs: Any) -> ModalityEncoder:
    """Build the encoder registered as ``name`` with ``kwargs``.

    Raises:
        UnknownName: unknown name (a KeyError; the message names the nearest ones).
    """
    return ENCODERS.get(name).factory(**kwargs)
