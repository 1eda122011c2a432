"""The three-line API::

    predictor = Predictor(label="label").fit("train.csv")
    predictor.evaluate("test.csv")
    predictor.save("model/"); Predictor.load("model/").predict("new.csv")

The constructor only stores its arguments; ``fit`` learns (fitted attributes end in
``_``). Weights are saved as safetensors and settings as YAML; a saved model loads and
predicts exactly as before, with no code of the caller's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.checkpoint import build_encoders, load_weights, read_checkpoint, write_checkpoint
from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.dataset import EpochShuffleSampler
from polymodal.data.errors import ManifestError, OnError, Problem
from polymodal.data.noise import noisy
from polymodal.data.validation import check_labels
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.cache import CachedFeatures
from polymodal.encoders.registry import build_encoder
from polymodal.heads import n_outputs
from polymodal.model import MultimodalModel
from polymodal.presets import Preset, encoder_spec, resolve_preset

#: ``evaluate(noise=...)``: per column name or role, a level in [0, 1] for
#: :func:`polymodal.data.noise.noisy`, or a function applied to each decoded cell
#: (e.g. ``polymodal.data.noise.noisy_snr("audio", -10)``).
Noise = Mapping[str, float | Callable[[Any], Any]]
#: the per-epoch metrics of the fit, saved beside the weights
TRAINING_LOG = "training_log.csv"


def _metrics(problem_type: str, y_true: np.ndarray, proba: np.ndarray,
             classes: list[Any]) -> dict[str, float]:
    from sklearn import metrics

    if problem_type == "regression":
        pred = proba[:, 0]
        return {"rmse": float(np.sqrt(metrics.mean_squared_error(y_true, pred))),
                "mae": float(metrics.mean_absolute_error(y_true, pred)),
                "r2": float(metrics.r2_score(y_true, pred))}
    if problem_type == "multilabel":
        pred = (proba >= 0.5).astype(int)
        out = {"subset_accuracy": float(metrics.accuracy_score(y_true, pred)),
               "macro_f1": float(metrics.f1_score(y_true, pred, average="macro",
                                                  zero_division=0))}
        with contextlib.suppress(ValueError):
            out["roc_auc"] = float(metrics.roc_auc_score(y_true, proba, average="macro"))
        return out
    pred = proba.argmax(axis=1)
    out = {"accuracy": float(metrics.accuracy_score(y_true, pred)),
           "macro_f1": float(metrics.f1_score(y_true, pred, average="macro", zero_division=0))}
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(metrics.roc_auc_score(y_true, proba[:, 1]))
        else:
            out["roc_auc"] = float(metrics.roc_auc_score(y_true, proba, multi_class="ovr",
                                                         labels=list(range(len(classes)))))
        out["log_loss"] = float(metrics.log_loss(y_true, proba, labels=list(range(len(classes)))))
    except ValueError:  # a class absent from this set
        pass
    return out


def _pretrained_columns(init_from: str | os.PathLike[str], columns: list[str]) -> list[str]:
    """Fine-tuning from a checkpoint without ``modalities``: the columns it has encoders
    for, said when that leaves some out (a tuxpaint pretraining of pictures and captions
    fine-tunes those two, not its sounds)."""
    from polymodal.checkpoint import read_checkpoint

    saved = (read_checkpoint(init_from, "checkpoint to initialise from")[0]
             .get("encoders") or {})
    covered = [c for c in columns if c in saved]
    if not covered:
        raise ValueError(f"{init_from} has encoders for {sorted(saved)}, none of this "
                         f"manifest's columns {columns}; pretrain on them first")
    if len(covered) < len(columns):
        from polymodal.progress import console

        console.print(f"fine-tuning the columns {init_from} was pretrained on: "
                      f"{', '.join(covered)} (not {', '.join(sorted(set(columns) - set(covered)))};"
                      " modalities=[...] chooses)")
    return covered


def _majority_share(targets: list[Any]) -> float | None:
    """The accuracy of always guessing the most frequent class (the chance line)."""
    if not targets:
        return None
    counts = np.unique(np.asarray([int(t) for t in targets]), return_counts=True)[1]
    return float(counts.max() / counts.sum())


def _labelled(m: Manifest, label: str) -> tuple[Manifest, list[Problem]]:
    """The rows of ``m`` that have a label, and a problem for each row left out for
    lacking one (``validate`` calls it ``missing_label``): no row leaves a fit unsaid."""
    keep, missing = [], []
    for i in range(len(m)):
        if m.label(i) is not None:
            keep.append(i)
        else:
            missing.append(Problem(m.source_row(i), label, "missing_label",
                                   "label is missing: the row is left out of training",
                                   manifest=m.source))
    return m.subset(keep), missing


class Predictor:
    """Fit a fused multimodal model on a table of rows that point at media.

    Args:
        label: the label column.
        problem_type: "binary", "multiclass", "multilabel" or "regression" (inferred
            when None: numbers with many values -> regression, else classes).
        modalities: columns (or modality names) to use; default every modality column.
        fusion: "concat", "late", "gated", "attention", "tensor" or "lowrank".
        encoders: per modality or per column, an encoder name or (name, options).
        preset: "fast", "tiny" or "pretrained" (see :data:`PRESETS`).
        path: the run folder (checkpoints, logs, plots); default ``runs/<time>``.
        drop_modality: modality dropout during training (robustness to missing ones).
        class_weights: "balanced" to weight classes against imbalance, or None.
        seed: the seed of the run.
        dropout: dropout in the projections, the fusion MLPs and the head.
        unfreeze_after: train frozen pretrained encoders too from this epoch on (at a
            tenth of the learning rate); None keeps them frozen.
        freeze_encoders: keep every encoder fixed and train only the projections,
            fusion and head (a probe of pretrained features: ``fit(init_from=...)``).
        precision: Lightning's precision ("32-true", "bf16-mixed", "16-mixed"); default:
            mixed precision on a GPU that supports it, full precision on a CPU.
        cache_dir: where frozen encoders cache their outputs (default: the run folder).
        patience: epochs without a better validation loss before training stops
            (default: the preset's; 0 never stops early: a model that sits on a plateau
            for many epochs before it learns, as a Relation Network does).
        memory_cache_mb: during ``fit``, keep each decoded and preprocessed image or audio
            file, and each tokenized text, in memory up to this many MiB, so it is
            decoded once and not once per row and epoch (sort-of-clevr's 9,800 pictures
            are named by 196,000 questions); 0 decodes every time.
        schedule: the learning rate after its warm-up: "cosine" decays it to zero over
            ``max_epochs``; "constant" holds it (for continuing a trained model, or for
            a model that needs many epochs at one rate to leave a plateau).
        roles: column roles that override the inferred ones, e.g. ``{"sample": "id",
            "note": "text"}`` (the names of :class:`~polymodal.data.schema.Role`).
    """

    def __init__(self, label: str, problem_type: str | None = None,
                 modalities: Sequence[str] | None = None, fusion: str = "attention",
                 encoders: Mapping[str, str | tuple[str, dict[str, Any]]] | None = None,
                 preset: str = "fast", path: str | os.PathLike[str] | None = None,
                 drop_modality: float = 0.0, class_weights: str | None = None,
                 seed: int = 0, max_epochs: int | None = None, batch_size: int | None = None,
                 lr: float | None = None, dim: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 fusion_options: dict[str, Any] | None = None, dropout: float = 0.1,
                 unfreeze_after: int | None = None, freeze_encoders: bool = False,
                 precision: str | None = None, memory_cache_mb: float = 1024,
                 patience: int | None = None, schedule: str = "cosine",
                 roles: Mapping[str, str] | None = None) -> None:
        from polymodal.training.module import check_schedule

        self.schedule = check_schedule(schedule)  # refused here, not at fit's first step
        self.label = label
        self.roles = dict(roles or {})
        self.problem_type = problem_type
        self.modalities = list(modalities) if modalities is not None else None
        self.fusion = fusion
        self.encoders = dict(encoders or {})
        self.preset = preset
        self.path = path
        self.drop_modality = drop_modality
        self.class_weights = class_weights
        self.seed = seed
        self.max_epochs, self.batch_size, self.lr, self.dim = max_epochs, batch_size, lr, dim
        self.cache_dir = cache_dir
        self._cache_loaders: dict[str, CachedFeatures] = {}
        self.fusion_options = dict(fusion_options or {})
        self.dropout = dropout
        self.unfreeze_after = unfreeze_after
        self.freeze_encoders = freeze_encoders
        self.precision = precision
        self.memory_cache_mb = memory_cache_mb
        self.patience = patience

    # -- settings -----------------------------------------------------------------
    def _preset(self) -> Preset:
        return resolve_preset(self.preset)

    def _patience(self, preset: Preset) -> int | None:
        """Early stopping's patience: ``patience`` or the preset's; None for off."""
        patience = preset.patience if self.patience is None else self.patience
        if patience < 0:
            raise ValueError(f"patience must be >= 0 (0: never stop early), got {patience}")
        return patience or None

    def _read(self, data: Any) -> Manifest:
        if isinstance(data, Manifest):
            return data
        m = Manifest.read(data, label=self.label if isinstance(data, str | os.PathLike |
                                                               pd.DataFrame) else None,
                          roles=self.roles or None)
        if self.label not in m.table.columns:
            raise ManifestError(f"{m.source}: label column {self.label!r} is not in the "
                                f"manifest; columns: {list(m.table.columns)}")
        return m

    def _columns(self, m: Manifest, init_from: str | os.PathLike[str] | None = None
                 ) -> list[str]:
        cols = m.select_modality_columns(self.modalities)
        if init_from is not None and self.modalities is None:
            cols = _pretrained_columns(init_from, cols)
        if not cols:
            raise ValueError(f"{m.source} has no image, audio or text column to learn from")
        for c in cols:
            if m.is_empty_column(c):
                raise ValueError(f"column {c!r} is empty in every row; drop it with "
                                 f"modalities=[...] or roles={{{c!r}: 'ignore'}}")
        return cols

    # -- labels -------------------------------------------------------------------
    def _infer_problem(self, y: pd.Series) -> str:
        if self.problem_type is not None:
            return self.problem_type
        values = y.dropna()
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and values.nunique() > 20 and \
                not np.allclose(numeric, numeric.round()):
            return "regression"
        return "binary" if values.nunique() == 2 else "multiclass"

    def _label_values(self, m: Manifest) -> pd.Series:
        y = m.table[self.label]
        if y.isna().all():
            raise ValueError(f"label column {self.label!r} is empty in every row")
        return y

    def _without_bad_labels(self, m: Manifest, on_error: OnError
                            ) -> tuple[Manifest, list[Problem]]:
        """``m`` without the rows whose label is of the wrong type (what ``validate``
        calls ``bad_label``: a list where one value is due, a word in a column of
        numbers); under ``on_error="raise"`` the first one stops the run, named."""
        if self.problem_type == "multilabel":  # lists are what it takes
            return m, []
        label_type = "numeric" if self.problem_type == "regression" else "auto"
        bad = [p for p in check_labels(m, label_type) if p.kind == "bad_label"]
        if not bad:
            return m, []
        bad = [Problem(p.row, p.column, p.kind, p.reason, manifest=m.source) for p in bad]
        if on_error == "raise":
            raise bad[0].to_error()
        rows = {p.row for p in bad}
        keep = [i for i in range(len(m)) if m.source_row(i) not in rows]
        return m.subset(keep), bad

    def _target(self, value: Any) -> Any:
        if self.problem_type_ == "regression":
            return float(value)
        if self.problem_type_ == "multilabel":
            labels = value if isinstance(value, list | tuple) else str(value).split("|")
            vec = torch.zeros(len(self.classes_))
            for lab in labels:
                vec[self.class_index_[str(lab).strip()]] = 1.0
            return vec
        return self.class_index_[str(value)]

    # -- building -----------------------------------------------------------------
    def _build(self, m: Manifest, columns: list[str],
               init_from: str | os.PathLike[str] | None = None) -> None:
        preset = self._preset()
        self.encoder_specs_: dict[str, tuple[str, dict[str, Any]]] = {}
        encoders: dict[str, ModalityEncoder] = {}
        if init_from is not None:
            from polymodal.pretraining import pretrained_encoders

            encoders, self.encoder_specs_ = pretrained_encoders(
                init_from, columns, m.modality_columns, self.encoders)
        for c in columns:
            if c not in encoders:
                name, options = encoder_spec(self.encoders, c, m.modality_columns[c], preset)
                encoders[c] = build_encoder(name, **options)
                self.encoder_specs_[c] = (name, options)
            if self.freeze_encoders:
                encoders[c].freeze()
        self._encoders = encoders
        self.dim_ = self.dim or preset.dim

    def _make_model(self, cached: set[str] | None = None) -> MultimodalModel:
        return MultimodalModel(self._encoders, self.fusion, self.dim_,
                               n_outputs(self.problem_type_, len(self.classes_)),
                               cached=cached, drop_modality=self.drop_modality,
                               fusion_options=self.fusion_options, dropout=self.dropout)

    def _dataset(self, m: Manifest, *, with_labels: bool, on_error: OnError = "raise",
                 noise: Noise | None = None, memory_cache_mb: float = 0
                 ) -> MultimodalDataset:
        transforms: dict[str, Callable[[Any], Any]] = {
            c: e.preprocess for c, e in self._encoders.items()}
        loaders = {c: f for c, f in self._cache_loaders.items() if c in self.model_.cached}
        for key, level in (noise or {}).items():
            for c in self.columns_:
                role = m.schema[c].role.value
                if key in (c, role) and (callable(level) or level > 0):
                    corrupt = level if callable(level) else noisy(role, level, seed=self.seed)
                    transforms[c] = lambda v, f=corrupt, p=transforms[c]: p(f(v))
        return MultimodalDataset(m, columns=self.columns_, transforms=transforms,
                                 on_error=on_error, cell_loaders=loaders,
                                 label_transform=self._target if with_labels else None,
                                 memory_cache_mb=0 if noise else memory_cache_mb)

    def _loader(self, m: Manifest, *, shuffle: bool, with_labels: bool,
                on_error: OnError = "raise", noise: Noise | None = None,
                memory_cache_mb: float = 0) -> torch.utils.data.DataLoader:
        ds = self._dataset(m, with_labels=with_labels, on_error=on_error, noise=noise,
                           memory_cache_mb=memory_cache_mb)
        sampler = EpochShuffleSampler(len(ds), self.seed) if shuffle else None
        return ds.loader(self.batch_size_, sampler=sampler)

    # -- fit ----------------------------------------------------------------------
    def fit(self, train: Any, tuning: Any = None, *, time_limit: float | None = None,
            on_error: OnError = "raise", devices: int | str = 1,
            progress: bool = True, callbacks: list[Any] | None = None,
            resume: bool = False, init_from: str | os.PathLike[str] | None = None
            ) -> Predictor:
        """Train on ``train`` (a manifest path, DataFrame or Manifest).

        Without ``tuning``, a manifest with a split column trains on "train" and tunes
        on "val"; otherwise 10% of the rows (seeded) are held out. ``callbacks`` are
        extra Lightning callbacks. ``resume=True`` continues an interrupted run in the
        same ``path`` from its last checkpoint (same settings, same batches).
        ``init_from`` starts the encoders from a saved Pretrainer (or Predictor): their
        weights and vocabularies; with ``freeze_encoders=True`` they stay fixed.
        """
        import lightning as L

        from polymodal.training import LitMultimodal, UnfreezeEncoders, fit_run, make_trainer
        from polymodal.training.run import remaining_time
        from polymodal.training.skips import decoded_cells, training_skip_report

        start = time.time()
        m = self._read(train)
        m, label_problems = self._without_bad_labels(m, on_error)
        if tuning is None:
            m, tune = m.training_split(self.seed, fraction=0.1, minimum=1)
        else:
            tune, tune_problems = self._without_bad_labels(self._read(tuning), on_error)
            label_problems += tune_problems
        y = self._label_values(m)
        # the labels of the tuning rows too: a class that a small random hold-out took
        # whole out of the training rows is still a class the model knows (and is
        # scored on), not an error at the first validation batch
        both = pd.concat([y, tune.table[self.label]], ignore_index=True) if self.label in \
            tune.table.columns else y
        self.problem_type_ = self._infer_problem(both)
        if self.problem_type_ == "regression":
            self.classes_: list[Any] = []
        else:
            if self.problem_type_ == "multilabel":
                labels = {str(x).strip() for v in both.dropna() for x in
                          (v if isinstance(v, list) else str(v).split("|"))}
            else:
                labels = {str(v) for v in both.dropna()}
            if len(labels) < 2:
                raise ValueError(f"label column {self.label!r} has one class only "
                                 f"({sorted(labels)}); a classifier needs two or more")
            self.classes_ = sorted(labels, key=lambda v: (len(v), v) if v.isdigit() else
                                   (0, v))
        self.class_index_ = {c: i for i, c in enumerate(self.classes_)}
        self.columns_ = self._columns(m, init_from)
        preset = self._preset()
        self.batch_size_ = self.batch_size or preset.batch_size
        L.seed_everything(self.seed, workers=True, verbose=False)
        self._build(m, self.columns_, init_from)
        self.init_from_ = str(init_from) if init_from is not None else None
        self.roles_ = m.schema.to_dict()
        for c, enc in self._encoders.items():  # vocabularies from the training rows
            if not enc.is_fitted:
                enc.fit(decoded_cells(m, c, on_error))
        m_lab, unlabelled = _labelled(m, self.label)
        self.chance_ = _majority_share([self._target(m_lab.label(i)) for i in range(len(m_lab))]
                                       ) if self.problem_type_ in ("binary", "multiclass") \
            else None
        t_lab, tune_unlabelled = _labelled(tune, self.label)
        label_problems += unlabelled + tune_unlabelled
        self.run_dir_ = Path(self.path or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
        self.run_dir_.mkdir(parents=True, exist_ok=True)
        # frozen encoders (and never unfrozen): train on their cached outputs
        frozen = {c for c, e in self._encoders.items()
                  if not e.trainable and self.unfreeze_after is None}
        cache_root = Path(self.cache_dir or self.run_dir_ / "feature-cache")
        self._cache_loaders = {c: CachedFeatures(self._encoders[c], cache_root)
                               for c in frozen}
        for c, features in self._cache_loaders.items():
            for part in (m, tune):
                features.fill(part, c, batch_size=self.batch_size_, show_progress=progress)
        self.model_ = self._make_model(cached=frozen)
        weights = None
        if self.class_weights == "balanced" and self.problem_type_ in ("multiclass",
                                                                      "binary"):
            counts = np.bincount([self._target(m_lab.label(i)) for i in range(len(m_lab))],
                                 minlength=len(self.classes_)).astype(float)
            if self.problem_type_ == "binary":  # BCE's weight of the positive class
                weights = torch.tensor([counts[0] / max(counts[1], 1.0)], dtype=torch.float32)
            else:
                weights = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)),
                                       dtype=torch.float32)
        self.class_weights_ = weights
        lit = LitMultimodal(self.model_, self.problem_type_, lr=self.lr or preset.lr,
                            class_weights=weights, schedule=self.schedule)
        epochs = preset.max_epochs if self.max_epochs is None else self.max_epochs
        trainer = make_trainer(self.run_dir_, max_epochs=epochs,
                               patience=self._patience(preset),
                               time_limit=remaining_time(start, time_limit),
                               devices=devices, has_validation=len(t_lab) > 0,
                               precision=self.precision,
                               progress=progress, resume=resume, callbacks=[
                                   *(callbacks or []),
                                   *([UnfreezeEncoders(self.unfreeze_after)]
                                     if self.unfreeze_after is not None else [])])
        train_loader = self._loader(m_lab, shuffle=True, with_labels=True, on_error=on_error,
                                    memory_cache_mb=self.memory_cache_mb)
        val_loader = self._loader(t_lab, shuffle=False, with_labels=True, on_error=on_error,
                                  memory_cache_mb=self.memory_cache_mb / 4)
        self.ended_ = fit_run(trainer, lit, train_loader, val_loader if len(t_lab) else None,
                              self.run_dir_, resume=resume)
        self.train_steps_ = int(trainer.global_step)
        self.model_.cached = set()  # inference runs the live encoders (noise, new files)
        self.model_.eval()
        self.skipped_ = training_skip_report(
            m.source, [*label_problems, *lit.skip_report.problems],
            {"train": train_loader.dataset, "val": val_loader.dataset}, lit.visited,
            on_error, self.run_dir_)
        self.fit_seconds_ = time.time() - start
        return self

    # -- inference ----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this Predictor is not fitted: call fit(train) or "
                               "Predictor.load(path) first")

    @torch.no_grad()
    def _outputs(self, data: Any, *, drop: Sequence[str] = (), embed: bool = False,
                 noise: Noise | None = None) -> tuple[np.ndarray, Manifest]:
        self._check_fitted()
        m = self._read_for_inference(data)
        self.model_.eval()
        rows: list[np.ndarray] = []
        for batch in self._loader(m, shuffle=False, with_labels=False, noise=noise):
            for c in drop:
                batch.present[c] = torch.zeros_like(batch.present[c])
            out = self.model_.embed(batch) if embed else self.model_(batch)
            rows.append(out.float().cpu().numpy())
        return (np.concatenate(rows) if rows else np.zeros((0, 1))), m

    def _read_for_inference(self, data: Any) -> Manifest:
        """``data`` read as the training data was (its roles); a column the model was
        trained on and the manifest lacks is that modality absent from every row (as an
        empty column is), said once on the console."""
        m = Manifest.read(data)
        missing = [c for c in self.columns_ if c not in m.table.columns]
        if missing:
            said = self.__dict__.setdefault("_said_absent", set())
            if (m.source, *missing) not in said:  # once, not per evaluate of a report
                from polymodal.progress import console

                said.add((m.source, *missing))
                console.print(f"{m.source}: no column {', '.join(map(repr, missing))}: "
                              "that modality is absent from every row")
            m = m.with_columns({c: None for c in missing})
        return m.with_roles(self.roles_)

    def predict_proba(self, data: Any) -> pd.DataFrame:
        """Class probabilities (one column per class), or values for regression."""
        out, m = self._outputs(data)
        if self.problem_type_ == "regression":
            return pd.DataFrame({self.label: out[:, 0]}, index=m.ids())
        return pd.DataFrame(self._to_proba(out), columns=self.classes_, index=m.ids())

    def _to_proba(self, out: np.ndarray) -> np.ndarray:
        """Head outputs to probabilities (values unchanged for regression)."""
        if self.problem_type_ == "regression":
            return out
        if self.problem_type_ == "binary":
            p = 1 / (1 + np.exp(-out[:, 0]))
            return np.stack([1 - p, p], axis=1)
        if self.problem_type_ == "multilabel":
            return 1 / (1 + np.exp(-out))
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, data: Any) -> pd.Series:
        """The predicted label of each row (indexed by row id)."""
        proba = self.predict_proba(data)
        if self.problem_type_ == "regression":
            return proba[self.label]
        if self.problem_type_ == "multilabel":
            return proba.apply(lambda r: "|".join(c for c in proba.columns if r[c] >= 0.5),
                               axis=1).rename(self.label)
        return proba.idxmax(axis=1).rename(self.label)

    def evaluate(self, data: Any, *, drop: Sequence[str] = (),
                 noise: Noise | None = None) -> dict[str, float]:
        """Metrics by problem type: accuracy, macro-F1, ROC-AUC, log loss; RMSE, MAE, R2.

        ``drop`` evaluates as if those columns were absent from every row; ``noise``
        corrupts columns or modalities at a level in [0, 1] (see
        :func:`polymodal.data.noise.noisy`) or with a function of one decoded cell
        (``noise={"audio": noisy_snr("audio", -10)}``)."""
        out, m = self._outputs(data, drop=drop, noise=noise)
        keep = [i for i in range(len(m)) if m.label(i) is not None]
        if not keep:
            raise ValueError(f"{m.source}: no row has a label to evaluate against")
        y = np.stack([np.asarray(self._target(m.label(i))) for i in keep])
        return _metrics(self.problem_type_, y, self._to_proba(out[keep]), self.classes_)

    def plot(self, data: Any, out_dir: str | os.PathLike[str] | None = None) -> list[Path]:
        """Write learning curves, the confusion matrix (classification) and the modality
        contribution as PNG files (default: the run folder); returns their paths. The
        learning curves come from the run's log, or from the ``training_log.csv`` saved
        with the model."""
        from polymodal import plots

        self._check_fitted()
        folder = Path(out_dir or getattr(self, "run_dir_", "."))
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        chance = getattr(self, "chance_", None)
        log = self.training_log()
        if log is not None:
            curve = plots.learning_curves(log, folder / "learning_curves.png", chance=chance,
                                          title=f"learning curves: {self.label}")
            if curve is not None:
                written.append(curve)
        if self.problem_type_ in ("binary", "multiclass"):
            m = self._read_for_inference(data)
            keep = [i for i in range(len(m)) if m.label(i) is not None]
            proba = self.predict_proba(m).to_numpy()[keep]
            y = np.array([self._target(m.label(i)) for i in keep])
            written.append(plots.confusion_matrix(y, proba.argmax(axis=1),
                                                  [str(c) for c in self.classes_],
                                                  folder / "confusion_matrix.png",
                                                  title=f"confusion matrix: {self.label}"))
        report = self.modality_report(data)
        written.append(plots.modality_contribution(
            report, folder / "modality_contribution.png",
            chance=chance if "accuracy" in report.columns else None))
        return written

    def training_log(self) -> pd.DataFrame | None:
        """The metrics of every epoch of the fit (its run's log, or the copy saved with
        the model), or None."""
        from polymodal.plots import read_metrics

        run = getattr(self, "run_dir_", None)
        if run is not None and (Path(run) / "logs").is_dir():
            return read_metrics(Path(run) / "logs" / "metrics.csv")
        saved = getattr(self, "saved_log_", None)
        return pd.read_csv(saved) if saved is not None and Path(saved).is_file() else None

    def embed(self, data: Any) -> np.ndarray:
        """The fused representation of each row, (N, d)."""
        return self._outputs(data, embed=True)[0]

    def modality_report(self, data: Any) -> pd.DataFrame:
        """The main metric with each column removed and with each column alone, and the
        mean gated weights where the fusion is gated."""
        metric = "rmse" if self.problem_type_ == "regression" else (
            "macro_f1" if self.problem_type_ == "multilabel" else "accuracy")
        rows = [{"setting": "all columns", metric: self.evaluate(data)[metric]}]
        for c in self.columns_:
            rows.append({"setting": f"without {c}",
                         metric: self.evaluate(data, drop=[c])[metric]})
            if len(self.columns_) > 1:
                others = [o for o in self.columns_ if o != c]
                rows.append({"setting": f"{c} alone",
                             metric: self.evaluate(data, drop=others)[metric]})
        report = pd.DataFrame(rows)
        weights = self.gated_weights(data)
        if weights is not None:
            for c, w in weights.items():
                report.loc[len(report)] = {"setting": f"gate weight of {c}", metric: w}
        return report

    @torch.no_grad()
    def gated_weights(self, data: Any) -> dict[str, float] | None:
        """Mean per-column gate weights of a gated fusion over ``data`` (else None)."""
        from polymodal.fusion import GatedFusion

        fusion = self.model_.fusion
        if not isinstance(fusion, GatedFusion):
            return None
        m = self._read_for_inference(data)
        total = torch.zeros(len(self.columns_))
        n = 0
        for batch in self._loader(m, shuffle=False, with_labels=False):
            self.model_.embed(batch)
            assert fusion.last_weights is not None
            total += fusion.last_weights.sum(dim=0).cpu()
            n += len(batch)
        return {c: float(total[i] / max(n, 1)) for i, c in enumerate(fusion.columns)}

    # -- save / load ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``config.yaml``, ``model.safetensors`` and ``encoder_state.json``.

        Frozen pretrained encoders are not copied: they load from their package or
        name again.
        """
        self._check_fitted()
        config = {
            "polymodal": 1, "label": self.label, "problem_type": self.problem_type_,
            "classes": self.classes_, "columns": self.columns_, "roles": self.roles_,
            "fusion": self.fusion, "fusion_options": self.fusion_options, "dim": self.dim_,
            "drop_modality": self.drop_modality, "batch_size": self.batch_size_,
            "dropout": self.dropout,
            "encoders": {c: {"name": n, "options": o} for c, (n, o) in self.encoder_specs_.items()},
            "preset": self.preset, "seed": self.seed,
            "init_from": getattr(self, "init_from_", None),
            "chance": getattr(self, "chance_", None),
        }
        folder = write_checkpoint(path, self.model_, config)
        log = self.training_log()
        if log is not None:  # the learning curves travel with the model
            from polymodal import plots

            log.to_csv(folder / TRAINING_LOG, index=False)
            plots.learning_curves(log, folder / "learning_curves.png",
                                  chance=getattr(self, "chance_", None),
                                  title=f"learning curves: {self.label}")
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Predictor:
        """Load a saved Predictor (safetensors weights, YAML settings; nothing pickled).

        Raises:
            ValueError: a missing, truncated or tampered file, named.
        """
        config, state, extra = read_checkpoint(path, "saved Predictor")
        if "label" not in config:
            raise ValueError(f"{path}: not a saved Predictor (a pretrained checkpoint? "
                             "load it with Pretrainer.load, or fine-tune from it with "
                             "fit(..., init_from=path))")
        p = cls(label=config["label"], problem_type=config["problem_type"],
                fusion=config["fusion"], preset=config["preset"], seed=config["seed"],
                drop_modality=config["drop_modality"], dim=config["dim"],
                fusion_options=config["fusion_options"], dropout=config["dropout"])
        p.problem_type_ = config["problem_type"]
        p.classes_ = config["classes"]
        p.class_index_ = {c: i for i, c in enumerate(p.classes_)}
        p.columns_ = config["columns"]
        p.roles_ = config["roles"]
        p.dim_ = config["dim"]
        p.batch_size_ = config["batch_size"]
        p.encoder_specs_ = {c: (e["name"], e["options"]) for c, e in config["encoders"].items()}
        p._encoders = build_encoders(p.encoder_specs_, extra)
        p.model_ = p._make_model()
        load_weights(p.model_, state, extra, path)
        p.model_.eval()
        p.chance_ = config.get("chance")  # absent from models saved before it
        p.saved_log_ = Path(path) / TRAINING_LOG
        return p
