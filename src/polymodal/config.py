"""Settings as data: one dataclass per estimator, read from YAML, with dotted overrides.

The same settings reach an estimator from Python, from a config file and from the
command line, and are saved with a fitted model::

    config = load_config("train.yaml", ["fusion=gated", "fusion_options.heads=2"])
    predictor = Predictor.from_config(config.estimator)
    predictor.config()          # the PredictorConfig it was made with, for save / load

A key that is not a setting is refused with the nearest valid name; a dotted key
(``encoders.image=cnn``, ``roles.sample=id``) sets one entry of a mapping setting. The
values of overrides are read as YAML (``dim=64`` is a number, ``modalities=[image]`` a
list). Each dataclass mirrors its estimator's constructor (a test holds them equal).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.data.errors import PolymodalError
from polymodal.registry import nearest


class ConfigError(PolymodalError, ValueError):
    """Settings that cannot be used: an unknown key, a missing one, a bad override."""


@dataclass
class PredictorConfig:
    """The settings of a :class:`~polymodal.predictor.Predictor` (see its arguments)."""

    label: str
    problem_type: str | None = None
    modalities: list[str] | None = None
    fusion: str = "attention"
    encoders: dict[str, Any] = field(default_factory=dict)
    preset: str = "auto"
    path: str | None = None
    drop_modality: float = 0.0
    class_weights: str | None = None
    seed: int = 0
    max_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    dim: int | None = None
    cache_dir: str | None = None
    fusion_options: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.1
    unfreeze_after: int | None = None
    freeze_encoders: bool = False
    precision: str | None = None
    memory_cache_mb: float = 1024
    patience: int | None = None
    schedule: str = "cosine"
    roles: dict[str, str] = field(default_factory=dict)
    media_cache: str | None = "auto"
    candidates: list[str] | None = None


@dataclass
class PretrainerConfig:
    """The settings of a :class:`~polymodal.pretraining.Pretrainer` (see its arguments)."""

    modalities: list[str] | None = None
    encoders: dict[str, Any] = field(default_factory=dict)
    preset: str = "fast"
    dim: int | None = None
    projection: str = "mlp"
    anchor: str | None = None
    temperature: float = 0.07
    learn_temperature: bool = True
    queue_size: int = 0
    freeze: list[str] = field(default_factory=list)
    max_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    path: str | None = None
    patience: int = 5
    cache_dir: str | None = None
    precision: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    memory_cache_mb: float = 1024
    media_cache: str | None = "auto"


@dataclass
class FitConfig:
    """What a config file gives ``fit`` (and where ``polymodal train`` saves)."""

    train: Any = None
    tuning: Any = None
    save: str | None = None
    time_limit: float | None = None
    on_error: str = "raise"
    resume: bool = False
    init_from: str | None = None  # Predictor only: fine-tune from a saved model
    workers: int = 0  # DataLoader worker processes
    devices: Any = 1  # per node; >1 (or "auto") runs DDP
    num_nodes: int = 1  # under torchrun / SLURM


@dataclass
class RunConfig:
    """A whole config file: the estimator's settings and the fit's."""

    estimator: PredictorConfig | PretrainerConfig
    fit: FitConfig

    def to_dict(self) -> dict[str, Any]:
        """One flat mapping, as a config file holds it (unset fit keys left out)."""
        run = {k: v for k, v in dataclasses.asdict(self.fit).items()
               if v != getattr(FitConfig, k, None)}
        return {**to_dict(self.estimator), **run}


def to_dict(config: Any) -> dict[str, Any]:
    """A settings dataclass as plain YAML-safe values."""
    return {k: _plain(v) for k, v in dataclasses.asdict(config).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def field_names(kind: type) -> list[str]:
    """The settings of a config dataclass, in order."""
    return [f.name for f in dataclasses.fields(kind)]


def _unknown(key: str, valid: Sequence[str], where: str) -> ConfigError:
    near = nearest(key, valid)
    hint = f"; did you mean {near!r}?" if near else ""
    return ConfigError(f"{where}unknown setting {key!r}{hint} "
                       f"(valid settings: {', '.join(sorted(valid))})")


def parse_overrides(overrides: Sequence[str] | Mapping[str, Any] | None
                    ) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` (values read as YAML) or a mapping, as a mapping of dotted
    keys to values."""
    import yaml

    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. fusion=gated, "
                              "encoders.image=cnn)")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def apply_overrides(settings: Mapping[str, Any], overrides: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """``settings`` with each dotted key of ``overrides`` set (``roles.sample=id`` sets
    one entry of ``roles``); a None value of a plain key leaves the setting as it was
    (a command-line flag not given)."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in settings.items()}
    for key, value in overrides.items():
        head, *rest = key.split(".")
        if not rest:
            if value is not None:
                out[head] = value
            continue
        target = out.setdefault(head, {})
        if not isinstance(target, dict):
            raise ConfigError(f"override {key!r}: setting {head!r} is "
                              f"{type(target).__name__}, not a mapping of entries")
        for part in rest[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a mapping")
        target[rest[-1]] = value
    return out


def build(kind: type, settings: Mapping[str, Any], where: str = "") -> Any:
    """``kind`` (a config dataclass) from ``settings``; an unknown key is refused with
    the nearest valid name, a missing required one by name."""
    valid = field_names(kind)
    for key in settings:
        if key not in valid:
            raise _unknown(key, valid, where)
    required = [f.name for f in dataclasses.fields(kind)
                if f.default is dataclasses.MISSING and f.default_factory is
                dataclasses.MISSING]
    missing = [k for k in required if settings.get(k) is None]
    if missing:
        raise ConfigError(f"{where}the config needs {', '.join(map(repr, missing))}")
    return kind(**{k: v for k, v in settings.items()})


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config file's mapping (empty file: no settings)."""
    import yaml

    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config is a mapping of settings, not "
                          f"{type(loaded).__name__}")
    return loaded


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                overrides: Sequence[str] | Mapping[str, Any] | None = None, *,
                kind: type = PredictorConfig) -> RunConfig:
    """A config file (or mapping) with ``overrides`` applied, split into the
    estimator's settings (``kind``) and the fit's.

    Raises:
        ConfigError: an unknown key (with the nearest valid one) or a missing one.
    """
    where = f"{source}: " if isinstance(source, str | os.PathLike) else ""
    settings = read_yaml(source) if isinstance(source, str | os.PathLike) else \
        dict(source or {})
    settings = apply_overrides(settings, parse_overrides(overrides))
    fit_keys = set(field_names(FitConfig))
    if kind is PretrainerConfig:
        fit_keys.discard("init_from")
    valid = [*field_names(kind), *sorted(fit_keys)]
    for key in settings:
        if key not in valid:
            raise _unknown(key, valid, where)
    fit = FitConfig(**{k: v for k, v in settings.items() if k in fit_keys})
    estimator = build(kind, {k: v for k, v in settings.items() if k not in fit_keys}, where)
    return RunConfig(estimator, fit)


def write_yaml(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write a settings dataclass (or a :class:`RunConfig`) as a config file that
    :func:`load_config` reads back equal."""
    import yaml

    data = config.to_dict() if isinstance(config, RunConfig) else to_dict(config)
    path = Path(path)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
