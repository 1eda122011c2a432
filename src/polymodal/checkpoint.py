"""Saved models on disk: ``config.yaml`` (settings), ``model.safetensors`` (weights) and
``encoder_state.json`` (vocabularies and other non-tensor state). Nothing is pickled;
frozen pretrained towers are not copied, they load from their package or name again.
Shared by the Predictor and the Pretrainer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.registry import build_encoder

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "encoder_state.json"


def is_frozen_pretrained(model: nn.Module, key: str) -> bool:
    """Is state ``key`` (``encoders.<column>....``) part of a frozen pretrained tower?"""
    parts = key.split(".")
    if parts[0] != "encoders":
        return False
    enc = model.encoders[parts[1]]  # type: ignore[index]
    return bool(enc.pretrained and not enc.trainable)


def write_checkpoint(path: str | os.PathLike[str], model: nn.Module,
                     config: dict[str, Any]) -> Path:
    """Write a model's weights, its non-tensor state and ``config`` to folder ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    full = model.state_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in full.items()
             if isinstance(v, torch.Tensor) and not is_frozen_pretrained(model, k)}
    extra = {k: v for k, v in full.items() if not isinstance(v, torch.Tensor)}
    tmp = path / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path / WEIGHTS_NAME)
    (path / STATE_NAME).write_text(json.dumps(extra))
    (path / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_checkpoint(path: str | os.PathLike[str], what: str = "saved model"
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """(config, tensor state, non-tensor state) of a folder written by
    :func:`write_checkpoint`.

    Raises:
        ValueError: a missing, truncated or tampered file, named.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a {what} (no such folder)")
    for name in (CONFIG_NAME, WEIGHTS_NAME, STATE_NAME):
        if not (path / name).exists():
            raise ValueError(f"{path}: not a {what} ({name} is missing)")
    try:
        config = yaml.safe_load((path / CONFIG_NAME).read_text())
        state = load_file(str(path / WEIGHTS_NAME))
        extra = json.loads((path / STATE_NAME).read_text())
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the {what} ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: {CONFIG_NAME} is not a mapping")
    return config, state, extra


def build_encoders(specs: dict[str, tuple[str, dict[str, Any]]], extra: dict[str, Any]
                   ) -> dict[str, ModalityEncoder]:
    """Encoders from their saved specs, with their vocabularies (non-tensor state)
    restored before the weights that need them."""
    encoders = {c: build_encoder(n, **o) for c, (n, o) in specs.items()}
    for key, value in extra.items():
        parts = key.split(".")
        if parts[0] != "encoders":
            continue
        column = parts[1].replace("\u2024", ".")
        if column in encoders:
            encoders[column].set_extra_state(value)
    return encoders


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], extra: dict[str, Any],
                 path: str | os.PathLike[str]) -> None:
    """Load saved weights into ``model``; every weight must fit (frozen pretrained
    towers excepted: they come from their package)."""
    missing, unexpected = model.load_state_dict({**state, **extra}, strict=False)
    missing = [k for k in missing if not is_frozen_pretrained(model, k)]
    if missing or unexpected:
        raise ValueError(f"{path}: the weights do not fit the model "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
