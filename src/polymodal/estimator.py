"""The estimator core that supervised training and pretraining both are.

Data in (a manifest, its split), a model of per-column towers
(:class:`~polymodal.encoders.towers.Towers`: encoders, their vocabularies fitted on the
training rows, frozen ones cached), an objective, one Lightning run (checkpoints,
resume, time limit, skipped rows, logs) and save / load of settings + safetensors.
:class:`~polymodal.predictor.Predictor` and
:class:`~polymodal.pretraining.Pretrainer` are this core with a task: what differs is
the head on the towers and the loss (TorchMultimodal's ``LateFusion`` / ``TwoTower``,
OpenCLIP's one factory). A subclass fills the hooks between the steps of :meth:`fit`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from polymodal.checkpoint import build_encoders, load_weights, read_saved, write_checkpoint
from polymodal.data import Manifest
from polymodal.data.errors import OnError, Problem
from polymodal.data.media_cache import open_media_cache
from polymodal.data.shard_source import ShardSource
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.cache import CachedFeatures
from polymodal.encoders.registry import build_encoder
from polymodal.estimator_data import SHARD_VOCAB_ROWS, DataPath
from polymodal.presets import Preset, encoder_spec, resolve_preset
from polymodal.registry import UnknownName

EncoderSpecs = dict[str, tuple[str, dict[str, Any]]]
#: settings that name this machine's folders for one run: not saved with a model (a
#: loaded model that is fitted again makes a run folder of its own)
LOCAL = ("path", "cache_dir", "media_cache")

if TYPE_CHECKING:
    from typing_extensions import Self


class Estimator(DataPath):
    """The fit skeleton, the data path and save / load; see the module docstring.

    A subclass sets :attr:`kind` and :attr:`config_class`, has the settings of its
    config dataclass as constructor arguments (stored as attributes of the same name),
    and implements :meth:`_read_parts`, :meth:`_choose_columns`, :meth:`_make_model`,
    :meth:`_objective`, :meth:`_fitted` and :meth:`_restore`.
    """

    #: what ``config.yaml`` calls a saved one
    kind: ClassVar[str]
    #: its settings (:mod:`polymodal.config`)
    config_class: ClassVar[type]
    #: the hold-out of a fit without tuning rows or a split column: fraction, minimum
    holdout: ClassVar[tuple[float, int]] = (0.1, 1)
    #: validation needs at least this many rows
    min_validation_rows: ClassVar[int] = 1
    #: the run folder's name under ``runs/`` (a strftime pattern)
    run_name: ClassVar[str] = "%Y%m%d-%H%M%S"
    #: what ``load`` says when the folder holds another kind of model
    other_kind_hint: ClassVar[str] = ""

    # settings every estimator has (set by the subclass's constructor)
    seed: int
    preset: str
    encoders: dict[str, Any]
    dim: int | None
    max_epochs: int | None
    batch_size: int | None
    lr: float | None
    patience: int | None
    path: str | os.PathLike[str] | None
    cache_dir: str | os.PathLike[str] | None
    precision: str | None
    roles: dict[str, str]
    memory_cache_mb: float
    media_cache: str | os.PathLike[str] | None

    # -- settings as data ---------------------------------------------------------
    def _store(self, arguments: Mapping[str, Any]) -> None:
        """Keep each setting (a constructor argument, from its ``locals()``) as the
        attribute of its name: mappings and sequences copied, a None where the config
        has an empty container as that container (sklearn's constructor contract: store,
        do not learn)."""
        for f in dataclasses.fields(self.config_class):
            value = arguments[f.name]
            if value is None and f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, list | tuple):
                value = list(value)
            setattr(self, f.name, value)
        self._cache_loaders: dict[str, CachedFeatures] = {}

    @classmethod
    def from_config(cls, config: Any = None, /, **overrides: Any) -> Self:
        """An estimator from its settings: a config dataclass, a mapping, or a YAML
        file (:func:`polymodal.config.load_config`; dotted keys set one entry of a
        mapping setting); ``overrides`` win.

        Raises:
            ConfigError: an unknown setting (with the nearest valid name).
        """
        from polymodal import config as cfg

        if isinstance(config, cls.config_class):
            settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        elif isinstance(config, str | os.PathLike):
            settings = cfg.read_yaml(config)
        else:
            settings = dict(config or {})
        settings = cfg.apply_overrides(settings, overrides)
        built = cfg.build(cls.config_class, settings)
        return cls(**{f.name: getattr(built, f.name) for f in dataclasses.fields(built)})

    def config(self) -> Any:
        """The settings this estimator was made with, as its config dataclass."""
        return self.config_class(**{f.name: getattr(self, f.name)
                                    for f in dataclasses.fields(self.config_class)})

    # -- hooks --------------------------------------------------------------------
    def _read_parts(self, train: Any, tuning: Any, on_error: OnError
                    ) -> tuple[Manifest, Manifest, list[Problem]]:
        """The training and tuning rows, and the problems of rows left out."""
        raise NotImplementedError

    def _learn_targets(self, train: Manifest, tuning: Manifest) -> None:
        """What the labels say (a task, its classes); nothing for self-supervision."""

    def _choose_columns(self, m: Manifest, init_from: Any = None) -> list[str]:
        raise NotImplementedError

    def _starting_encoders(self, m: Manifest, init_from: Any
                           ) -> tuple[dict[str, ModalityEncoder], EncoderSpecs]:
        """Encoders that start from a saved model (fine-tuning); none by default."""
        return {}, {}

    def _frozen(self, column: str, m: Manifest) -> bool:
        """Whether ``column``'s tower is locked for this fit (beyond its own default)."""
        return False

    def _check_rows(self, m: Manifest) -> None:
        """Refuse rows that this task cannot learn from, before anything is decoded."""

    def _training_rows(self, m: Manifest, tune: Manifest
                       ) -> tuple[Manifest, Manifest, list[Problem]]:
        """The rows the loss sees (e.g. labelled ones), and problems of those left."""
        return m, tune, []

    def _cached_columns(self) -> set[str]:
        """Columns trained on cached tower outputs: the frozen towers."""
        return {c for c, e in self._encoders.items() if not e.trainable}

    def _make_model(self, cached: set[str] | None = None) -> torch.nn.Module:
        raise NotImplementedError

    def _objective(self, train: Manifest) -> torch.nn.Module:
        """The loss: ``step(model, batch, stage)`` and ``parameter_groups``."""
        raise NotImplementedError

    def _schedule(self) -> str:
        return "cosine"

    def _callbacks(self) -> list[Any]:
        return []

    def _label_transform(self) -> Callable[[Any], Any] | None:
        return None

    def _drop_last(self, m: Manifest) -> bool:
        return False

    def _fitted(self) -> dict[str, Any]:
        """What fit learnt beyond the weights, saved in ``config.yaml``."""
        raise NotImplementedError

    def _restore(self, fitted: Mapping[str, Any]) -> None:
        """Set the fitted attributes from :meth:`_fitted`'s mapping."""
        raise NotImplementedError

    def _saved_module(self) -> torch.nn.Module:
        """The module whose state a checkpoint holds."""
        return self.model_

    def _after_fit(self, trainer: Any) -> None:
        """Record what the run did (steps, pairs seen)."""

    def _after_save(self, folder: Path) -> None:
        """Write what travels with the weights (a training log)."""

    def _after_load(self, folder: Path) -> None:
        """Read what travelled with the weights."""

    # -- fit ----------------------------------------------------------------------
    def _patience(self, preset: Preset) -> int | None:
        """Early stopping's patience: ``patience`` or the preset's; None for off."""
        patience = preset.patience if self.patience is None else self.patience
        if patience < 0:
            raise ValueError(f"patience must be >= 0 (0: never stop early), got {patience}")
        return patience or None

    def _build_encoders(self, m: Manifest, preset: Preset, init_from: Any) -> None:
        """Each column's encoder: from ``init_from``, else named, else the preset's."""
        encoders, specs = self._starting_encoders(m, init_from)
        for c in self.columns_:
            if c not in encoders:
                name, options = encoder_spec(self.encoders, c, m.modality_columns[c], preset)
                encoders[c] = build_encoder(name, **options)
                specs[c] = (name, options)
            if self._frozen(c, m):
                encoders[c].freeze()
        self._encoders = {c: encoders[c] for c in self.columns_}
        self.encoder_specs_: EncoderSpecs = {c: specs[c] for c in self.columns_}

    def _make_run_dir(self) -> Path:
        """The run folder, made: ``path``, else ``runs/<time>``."""
        self.run_dir_ = Path(self.path or Path("runs") / time.strftime(self.run_name))
        self.run_dir_.mkdir(parents=True, exist_ok=True)
        return self.run_dir_

    def fit(self, train: Any, tuning: Any = None, *, time_limit: float | None = None,
            on_error: OnError = "raise", devices: int | str = 1, progress: bool = True,
            callbacks: list[Any] | None = None, resume: bool = False,
            init_from: str | os.PathLike[str] | None = None, workers: int = 0,
            num_nodes: int = 1) -> Self:
        """Train on ``train`` (a manifest path, DataFrame or Manifest, or a shard folder
        written by ``polymodal shard``: its path or URL).

        Without ``tuning``, a manifest with a split column trains on "train" and tunes
        on "val"; otherwise a seeded share of the rows is held out. ``time_limit`` is
        wall-clock seconds for the whole fit (the best finished epoch is kept);
        ``callbacks`` are extra Lightning callbacks; ``resume=True`` continues an
        interrupted run in the same ``path`` from its last checkpoint; ``workers``
        DataLoader processes decode the batches (a shard folder's each read a run of
        its shards); ``devices`` per node and ``num_nodes`` run DDP (under torchrun or
        SLURM, one process per device, each reading its own share of a shard folder).
        """
        import lightning as L

        from polymodal.training import LitEstimator, fit_run, make_trainer
        from polymodal.training.run import remaining_time
        from polymodal.training.skips import decoded_cells, training_skip_report

        start = time.time()
        m, tune, problems = self._read_parts(train, tuning, on_error)
        self._learn_targets(m, tune)
        self.columns_ = self._choose_columns(m, init_from)
        preset = resolve_preset(self.preset)
        self.batch_size_ = self.batch_size or preset.batch_size
        self.dim_ = self.dim or preset.dim
        L.seed_everything(self.seed, workers=True, verbose=False)
        self._build_encoders(m, preset, init_from)
        self.roles_ = m.schema.to_dict()
        self._check_rows(m)
        shards = isinstance(m, ShardSource)
        for c, enc in self._encoders.items():  # vocabularies from the training rows
            if not enc.is_fitted:
                enc.fit(itertools.islice(m.cells(c, on_error), SHARD_VOCAB_ROWS) if shards
                        else decoded_cells(m, c, on_error))
        source = m.source
        m, tune, left_out = self._training_rows(m, tune)
        problems = [*problems, *left_out]
        self._make_run_dir()
        # frozen towers train on their cached outputs; streamed shards run them live
        frozen = set() if shards else self._cached_columns()
        cache_root = Path(self.cache_dir or self.run_dir_ / "feature-cache")
        self._cache_loaders = {c: CachedFeatures(self._encoders[c], cache_root)
                               for c in frozen}
        for c, features in self._cache_loaders.items():
            for part in (m, tune):
                features.fill(part, c, batch_size=self.batch_size_, show_progress=progress)
        self.model_ = self._make_model(cached=frozen)
        lit = LitEstimator(self.model_, self._objective(m), lr=self.lr or preset.lr,
                           schedule=self._schedule())
        validates = len(tune) >= self.min_validation_rows
        trainer = make_trainer(
            self.run_dir_, max_epochs=preset.max_epochs if self.max_epochs is None
            else self.max_epochs, patience=self._patience(preset),
            time_limit=remaining_time(start, time_limit), devices=devices,
            num_nodes=num_nodes,
            has_validation=validates, precision=self.precision, progress=progress,
            resume=resume, callbacks=[*(callbacks or []), *self._callbacks()])
        memory = self.memory_cache_mb
        disk = open_media_cache(self.media_cache)  # decoded media across runs
        train_loader = self._loader(m, shuffle=True, with_labels=True, on_error=on_error,
                                    memory_cache_mb=memory, drop_last=self._drop_last(m),
                                    media_cache=disk, workers=workers, per_process=True)
        val_loader = self._loader(tune, shuffle=False, with_labels=True, on_error=on_error,
                                  memory_cache_mb=memory / 4, media_cache=disk,
                                  workers=workers, per_process=True)
        self.ended_ = fit_run(trainer, lit, train_loader, val_loader if validates else None,
                              self.run_dir_, resume=resume)
        self.train_steps_ = int(trainer.global_step)
        self.model_.cached = set()  # inference runs the live encoders (noise, new files)
        self.model_.eval()
        self._after_fit(trainer)
        self.skipped_ = training_skip_report(
            source, [*problems, *lit.skip_report.problems],
            {} if shards else {"train": train_loader.dataset, "val": val_loader.dataset},
            lit.visited, on_error, self.run_dir_)
        self.fit_seconds_ = time.time() - start
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            name = type(self).__name__
            raise RuntimeError(f"this {name} is not fitted: call fit(train) or "
                               f"{name}.load(path) first")

    # -- save / load ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``config.yaml`` (the settings but :data:`LOCAL` ones, and what fit
        learnt), ``model.safetensors`` and ``encoder_state.json`` (vocabularies).
        Frozen pretrained encoders are not copied: they load from their package or
        name again."""
        from polymodal import __version__
        from polymodal.checkpoint import FORMAT
        from polymodal.config import to_dict

        self._check_fitted()
        settings = {k: v for k, v in to_dict(self.config()).items() if k not in LOCAL}
        config = {"polymodal": FORMAT, "saved_by": __version__, "kind": self.kind,
                  "settings": settings, "fitted": self._fitted()}
        folder = write_checkpoint(path, self._saved_module(), config)
        self._after_save(folder)
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Load a saved model (safetensors weights, YAML settings; nothing pickled),
        from this version or an earlier one.

        Raises:
            ValueError: a missing, truncated or tampered file, another kind of model,
                or a newer format than this version reads, named.
        """
        what = f"saved {cls.__name__}"
        saved = read_saved(path, what)
        if saved.kind != cls.kind:
            raise ValueError(f"{path}: not a {what} (it holds {saved.kind or 'no kind'}"
                             f"){cls.other_kind_hint}")
        try:
            est = cls.from_config(saved.settings)
            est._restore(saved.fitted)
            est.encoder_specs_ = {c: (e["name"], e["options"])
                                  for c, e in saved.fitted["encoders"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: cannot read the {what}: its config.yaml lacks or "
                             f"garbles {exc} (half-written or edited); refused") from None
        try:
            est._encoders = build_encoders(est.encoder_specs_, saved.extra)
        except UnknownName as exc:  # a tower of a later version (builtin:general's, say)
            from polymodal import __version__

            raise ValueError(f"{path}: saved by polymodal {saved.saved_by or 'another'} "
                             f"with the {exc.kind} {exc.name!r}, which this polymodal "
                             f"({__version__}) lacks: install polymodal>="
                             f"{saved.saved_by or __version__} to load it") from None
        est._cache_loaders = {}
        est.model_ = est._make_model()
        load_weights(est._saved_module(), saved.state, saved.extra, path)
        est.model_.eval()
        est._after_load(Path(path))
        return est
