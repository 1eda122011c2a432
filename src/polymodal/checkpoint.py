"""Saved models on disk: ``config.yaml`` (settings), ``model.safetensors`` (weights) and
``encoder_state.json`` (vocabularies and other non-tensor state). Nothing is pickled;
frozen pretrained towers are not copied, they load from their package or name again.
Shared by the Predictor and the Pretrainer.

Every file is written atomically (a temporary file, flushed, then renamed), and
``config.yaml``, written last, records the SHA-256 of the other two: a folder
half-written by a crash, a truncated file or a file changed after saving is refused
with a clear error when it is read, never loaded in part."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.registry import build_encoder
from polymodal.files import replace_atomically as _replace_atomically
from polymodal.files import sha256_file, write_atomically

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "encoder_state.json"
#: the key of config.yaml that holds the SHA-256 of the other files
CHECKSUMS = "checksums"
#: the format of config.yaml this version writes (1: polymodal 0.1's flat settings;
#: 2: ``kind``, ``settings`` (the estimator's config) and ``fitted`` (what fit learnt))
FORMAT = 2
#: what a Predictor saved in format 1 kept as settings; the rest of it was fitted state
_V1_PREDICTOR_SETTINGS = ("label", "problem_type", "fusion", "fusion_options", "dim",
                          "drop_modality", "dropout", "preset", "seed")
_V1_PRETRAINER_SETTINGS = ("preset", "dim", "projection", "anchor", "seed")


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
    tmp = path / f".{WEIGHTS_NAME}.{os.getpid()}.tmp"
    try:
        save_file(state, str(tmp))
        _replace_atomically(tmp, path / WEIGHTS_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    write_atomically(path / STATE_NAME, json.dumps(extra))
    config = {**config, CHECKSUMS: {name: sha256_file(path / name)
                                    for name in (WEIGHTS_NAME, STATE_NAME)}}
    write_atomically(path / CONFIG_NAME, yaml.safe_dump(config, sort_keys=False))
    return path


def read_checkpoint(path: str | os.PathLike[str], what: str = "saved model"
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """(config, tensor state, non-tensor state) of a folder written by
    :func:`write_checkpoint`.

    The weights are read with safetensors (tensors only: nothing in the file can run),
    the settings with ``yaml.safe_load`` and the rest as JSON. Files whose SHA-256 differs
    from the one ``config.yaml`` recorded when they were written are refused (folders
    written before checksums were recorded are read without this check).

    Raises:
        ValueError: a missing, truncated, half-written or tampered file, named.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not a {what} (no such folder)")
    for name in (CONFIG_NAME, WEIGHTS_NAME, STATE_NAME):
        if not (path / name).exists():
            raise ValueError(f"{path}: not a {what} ({name} is missing)")
    try:
        config = yaml.safe_load((path / CONFIG_NAME).read_text(encoding="utf-8"))
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the {what}'s {CONFIG_NAME} ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: {CONFIG_NAME} is not a mapping")
    checksums = config.pop(CHECKSUMS, None)
    if checksums is None and isinstance(config.get("polymodal"), int) and \
            config["polymodal"] >= 2:  # written since checksums always are
        raise ValueError(f"{path}: cannot read the {what}: {CONFIG_NAME} has no "
                         f"{CHECKSUMS!r} entry (half-written or edited); refused")
    if checksums is not None:
        if not isinstance(checksums, dict):
            raise ValueError(f"{path}: {CONFIG_NAME} has a damaged {CHECKSUMS!r} entry")
        for name in (WEIGHTS_NAME, STATE_NAME):
            if checksums.get(name) != sha256_file(path / name):
                raise ValueError(
                    f"{path}: cannot read the {what}: {name} is not the file saved with "
                    f"this {CONFIG_NAME} (its SHA-256 differs: changed after saving, "
                    "truncated, or half-written by a crash); refused")
    try:
        state = load_file(str(path / WEIGHTS_NAME))
        extra = json.loads((path / STATE_NAME).read_text(encoding="utf-8"))
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the {what} ({type(exc).__name__}: "
                         f"{str(exc)[:300]})") from None
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


@dataclass
class SavedModel:
    """A saved model as read from its folder, in this version's terms whatever format
    wrote it.

    Attributes:
        kind: "predictor" or "contrastive-pretraining".
        settings: the estimator's settings (its config dataclass, as a mapping).
        fitted: what fit learnt (columns, roles, encoder specs, classes, sizes).
        state: the weights (frozen pretrained towers excepted).
        extra: non-tensor state (vocabularies).
        saved_by: the polymodal version that wrote it (None before 0.2).
    """

    kind: str | None
    settings: dict[str, Any]
    fitted: dict[str, Any]
    state: dict[str, torch.Tensor]
    extra: dict[str, Any]
    saved_by: str | None = None


def read_saved(path: str | os.PathLike[str], what: str = "saved model") -> SavedModel:
    """A model folder (:func:`read_checkpoint`) in this version's terms.

    Raises:
        ValueError: a damaged folder (see :func:`read_checkpoint`), or one written in a
            newer format than this version reads, with the version it needs.
    """
    from polymodal import __version__

    config, state, extra = read_checkpoint(path, what)
    fmt = config.get("polymodal", 1)
    if fmt == FORMAT and not all(k in config for k in ("kind", "settings", "fitted")):
        raise ValueError(f"{path}: cannot read the {what}: {CONFIG_NAME} lacks "
                         f"{[k for k in ('kind', 'settings', 'fitted') if k not in config]}"
                         " (half-written or edited); refused")
    if not isinstance(fmt, int) or fmt > FORMAT:
        by = config.get("saved_by", "a newer version")
        raise ValueError(f"{path}: saved by polymodal {by} in model format {fmt}; this "
                         f"polymodal ({__version__}) reads formats up to {FORMAT}: "
                         f"install polymodal>={by} to load it")
    if fmt >= 2:
        return SavedModel(config.get("kind"), dict(config.get("settings") or {}),
                          dict(config.get("fitted") or {}), state, extra,
                          config.get("saved_by"))
    kind = config.get("kind") or ("predictor" if "label" in config else None)
    keys = _V1_PREDICTOR_SETTINGS if kind == "predictor" else _V1_PRETRAINER_SETTINGS
    settings = {k: config[k] for k in keys if k in config}
    fitted = {k: v for k, v in config.items() if k not in ("polymodal", "kind")}
    return SavedModel(kind, settings, fitted, state, extra)
