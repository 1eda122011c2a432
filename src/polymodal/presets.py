"""Presets: registered functions that give an encoder per modality and training sizes
(AutoGluon's presets, without its if/elif)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from polymodal.data.schema import Role
from polymodal.registry import Registry

EncoderSpec = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Preset:
    """Defaults a preset gives: an encoder per modality, sizes, epochs."""

    encoders: dict[str, tuple[str, dict[str, Any]]]
    dim: int = 128
    max_epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    patience: int = 6


#: every preset function by name
PRESETS: Registry[Callable[[], Preset]] = Registry("preset")


def register_preset(name: str) -> Callable[[Callable[[], Preset]], Callable[[], Preset]]:
    """Register a function that gives a :class:`Preset` under ``name`` (a decorator; a
    name registered twice is refused)."""
    return PRESETS.register(name)


@register_preset("fast")
def fast_preset() -> Preset:
    """Small encoders trained from scratch: minutes on a CPU."""
    return Preset({"image": ("cnn", {"image_size": 32, "dim": 64}),
                   "audio": ("mfcc-cnn", {"dim": 64}),
                   "text": ("word-mean", {"dim": 64})}, dim=64, max_epochs=30)


@register_preset("tiny")
def tiny_preset() -> Preset:
    """The smallest models, for tests and smoke runs."""
    return Preset({"image": ("cnn", {"image_size": 16, "dim": 16, "channels": 8}),
                   "audio": ("mfcc-cnn", {"dim": 16, "channels": 8}),
                   "text": ("word-mean", {"dim": 16})}, dim=16, max_epochs=3, batch_size=16,
                  patience=3)


@register_preset("pretrained")
def pretrained_preset() -> Preset:
    """Frozen offline pretrained towers (EfficientNet-Lite0, MiniLM) with cached
    features, and a trained audio CNN."""
    return Preset({"image": ("efficientnet-lite0", {}), "audio": ("mfcc-cnn", {"dim": 128}),
                   "text": ("minilm", {})}, dim=128, max_epochs=30)


@register_preset("auto")
def auto_preset() -> Preset:
    """The default: several recipes tried within the time limit, the best kept
    (:mod:`polymodal.auto`); these are the towers of its fusion network, frozen
    pretrained ones whose outputs are cached."""
    return Preset({"image": ("efficientnet-lite0", {}), "audio": ("whisper-encoder", {}),
                   "text": ("minilm", {})}, dim=128, max_epochs=30)


def resolve_preset(name: str) -> Preset:
    """The preset registered as ``name``.

    Raises:
        UnknownName: unknown name (a ValueError; the message names the nearest ones).
    """
    return PRESETS.get(name)()


def encoder_spec(encoders: Mapping[str, str | EncoderSpec], column: str, role: Role,
                 preset: Preset) -> EncoderSpec:
    """The encoder of ``column``: the caller's choice for the column or its modality,
    else the preset's."""
    spec = encoders.get(column, encoders.get(role.value))
    if spec is None:
        return preset.encoders[role.value]
    return (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
