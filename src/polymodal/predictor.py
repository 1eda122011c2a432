"""The three-line API::

    predictor = Predictor(label="label").fit("train.csv")
    predictor.evaluate("test.csv")
    predictor.save("model/"); Predictor.load("model/").predict("new.csv")

The constructor only stores its arguments (:class:`~polymodal.config.PredictorConfig`
holds the same settings as data); ``fit`` learns (fitted attributes end in ``_``). The
fit itself is the estimator core's (:mod:`polymodal.estimator`); what is the
Predictor's own is the task (:mod:`polymodal.heads`: labels to targets, loss,
probabilities, metrics) and the fused model on the towers. Weights are saved as
safetensors and settings as YAML; a saved model loads and predicts exactly as before,
with no code of the caller's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from polymodal.auto.saved import auto_fitted, load_members, save_members
from polymodal.config import PredictorConfig
from polymodal.data import Manifest
from polymodal.data.errors import ManifestError, OnError, Problem
from polymodal.data.rows import Rows, are_shards, open_rows, problems_opening
from polymodal.encoders.base import ModalityEncoder
from polymodal.estimator import EncoderSpecs, Estimator
from polymodal.estimator_data import Noise
from polymodal.heads import Task, infer_problem_type, make_task
from polymodal.model import MultimodalModel
from polymodal.predictor_report import PredictorReports
from polymodal.predictor_rows import (
    labelled,
    pretrained_columns,
    shards_to_predict,
    shards_to_train_on,
    without_bad_labels,
)

__all__ = ["Noise", "Predictor"]

#: the per-epoch metrics of the fit, saved beside the weights
TRAINING_LOG = "training_log.csv"


class Predictor(PredictorReports, Estimator):
    """Fit a fused multimodal model on a table of rows that point at media.

    Args:
        label: the label column.
        problem_type: "binary", "multiclass", "multilabel" or "regression" (inferred
            when None: numbers with many values -> regression, else classes).
        modalities: columns (or modality names) to use; default every modality column.
        fusion: "concat", "late", "gated", "attention", "tensor" or "lowrank".
        encoders: per modality or per column, an encoder name or (name, options).
        preset: "auto" (the default: several recipes tried within the time limit, scored
            on the validation rows, the best or a weighted ensemble of them kept; see
            :mod:`polymodal.auto` and :meth:`leaderboard`), or one network: "fast",
            "tiny" or "pretrained" (see :data:`PRESETS`).
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
        media_cache: a folder where ``fit`` keeps each decoded and preprocessed image
            and audio file on disk, by content and encoder, so later epochs and later
            runs (any process sharing the folder) decode nothing: "auto" is
            ``$POLYMODAL_MEDIA_CACHE`` or ``~/.cache/polymodal/media`` (20 GB, least
            recently used entries evicted; the default); None or "off" keeps none.
        candidates: the recipes ``preset="auto"`` tries, by name (default
            :data:`polymodal.auto.DEFAULT_CANDIDATES`; ``"scratch-network"`` adds the
            fast preset's towers trained end to end).
    """


    kind: ClassVar[str] = "predictor"
    config_class: ClassVar[type] = PredictorConfig
    other_kind_hint: ClassVar[str] = (
        "; a pretrained checkpoint loads with Pretrainer.load, or fine-tune from it with "
        "fit(..., init_from=path)")

    def __init__(self, label: str, problem_type: str | None = None,
                 modalities: Sequence[str] | None = None, fusion: str = "attention",
                 encoders: Mapping[str, str | tuple[str, dict[str, Any]]] | None = None,
                 preset: str = "auto", path: str | os.PathLike[str] | None = None,
                 drop_modality: float = 0.0, class_weights: str | None = None,
                 seed: int = 0, max_epochs: int | None = None, batch_size: int | None = None,
                 lr: float | None = None, dim: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 fusion_options: dict[str, Any] | None = None, dropout: float = 0.1,
                 unfreeze_after: int | None = None, freeze_encoders: bool = False,
                 precision: str | None = None, memory_cache_mb: float = 1024,
                 patience: int | None = None, schedule: str = "cosine",
                 roles: Mapping[str, str] | None = None,
                 media_cache: str | os.PathLike[str] | None = "auto",
                 candidates: Sequence[str] | None = None) -> None:
        from polymodal.fusion import fusion_class
        from polymodal.presets import resolve_preset
        from polymodal.training.module import check_schedule

        # names refused here, not after the vocabularies and the feature cache
        check_schedule(schedule)
        fusion_class(fusion)
        resolve_preset(preset)
        if problem_type is not None:
            make_task(problem_type)
        if candidates is not None:
            from polymodal.auto import candidate_specs

            candidate_specs(list(candidates))
        self._store(locals())

    def fit(self, train: Any, tuning: Any = None, **options: Any) -> Predictor:
        """Train on ``train``; see :meth:`Estimator.fit <polymodal.estimator.Estimator.fit>`
        for the arguments. With ``preset="auto"`` this is a search over recipes
        (:func:`polymodal.auto.fit_auto`), each network among them fitted by the
        estimator core; with ``init_from`` it is the one network fine-tuned from that
        pretraining (on the auto preset's towers where the pretraining has none)."""
        if self.preset == "auto" and options.get("init_from") is None \
                and not are_shards(train):  # shards stream to the one network
            from polymodal.auto import fit_auto

            return fit_auto(self, train, tuning, **options)
        return super().fit(train, tuning, **options)

    @property
    def is_auto(self) -> bool:
        """Whether this model is an ``auto`` fit's (a mix of candidates)."""
        return getattr(self, "auto_", None) is not None

    def leaderboard(self) -> pd.DataFrame:
        """Every candidate of an ``auto`` fit: validation score, fit seconds, prediction
        rows/s, its weight in the kept model, and what happened to it."""
        self._check_fitted()
        if not self.is_auto:
            raise ValueError(f"this Predictor was fitted with preset={self.preset!r}: "
                             "one network, no leaderboard (preset='auto' tries several)")
        return self.auto_.leaderboard()

    # -- reading ------------------------------------------------------------------
    def _read(self, data: Any, on_error: OnError = "raise") -> Rows:
        if isinstance(data, Manifest):
            return data
        shards = open_rows(data, on_error)
        if shards is not None:
            return shards_to_train_on(shards, self.label)
        m = Manifest.read(data, label=self.label if isinstance(data, str | os.PathLike |
                                                               pd.DataFrame) else None,
                          roles=self.roles or None)
        if self.label not in m.table.columns:
            raise ManifestError(f"{m.source}: label column {self.label!r} is not in the "
                                f"manifest; columns: {list(m.table.columns)}")
        return m

    def _read_parts(self, train: Any, tuning: Any, on_error: OnError
                    ) -> tuple[Manifest, Manifest, list[Problem]]:
        m = self._read(train, on_error)
        m, problems = without_bad_labels(m, self.problem_type, on_error, problems_opening(m))
        if tuning is None:
            m, tune = m.training_split(self.seed, *self.holdout)
        else:
            tune = self._read(tuning, on_error)
            tune, tune_problems = without_bad_labels(tune, self.problem_type, on_error,
                                                     problems_opening(tune))
            problems += tune_problems
        return m, tune, problems

    def _learn_targets(self, train: Manifest, tuning: Manifest) -> None:
        """The task and its classes, from the labels of the training rows and of the
        tuning rows too: a class that a small random hold-out took whole out of the
        training rows is still a class the model knows (and is scored on), not an error
        at the first validation batch."""
        y = train.table[self.label]
        if y.isna().all():
            raise ValueError(f"label column {self.label!r} is empty in every row")
        both = pd.concat([y, tuning.table[self.label]], ignore_index=True) \
            if self.label in tuning.table.columns else y
        problem_type = self.problem_type or infer_problem_type(both)
        kind = make_task(problem_type)
        self.task_: Task = make_task(problem_type, kind.classes_from(both, self.label))
        self.problem_type_ = problem_type
        self.classes_: list[Any] = self.task_.classes
        self.class_index_ = self.task_.index

    def _choose_columns(self, m: Manifest, init_from: Any = None) -> list[str]:
        cols = m.select_modality_columns(self.modalities)
        if init_from is not None and self.modalities is None:
            cols = pretrained_columns(init_from, cols)
        if not cols:
            raise ValueError(f"{m.source} has no image, audio or text column to learn from")
        for c in cols:
            if m.is_empty_column(c):
                raise ValueError(f"column {c!r} is empty in every row; drop it with "
                                 f"modalities=[...] or roles={{{c!r}: 'ignore'}}")
        return cols

    # -- the model and its objective ----------------------------------------------
    def _starting_encoders(self, m: Manifest, init_from: Any
                           ) -> tuple[dict[str, ModalityEncoder], EncoderSpecs]:
        self.init_from_ = str(init_from) if init_from is not None else None
        if init_from is None:
            return {}, {}
        from polymodal.pretraining import pretrained_encoders

        return pretrained_encoders(init_from, self.columns_, m.modality_columns, self.encoders)

    def _frozen(self, column: str, m: Manifest) -> bool:
        return self.freeze_encoders

    def _training_rows(self, m: Manifest, tune: Manifest
                       ) -> tuple[Manifest, Manifest, list[Problem]]:
        m_lab, unlabelled = labelled(m, self.label)
        t_lab, tune_unlabelled = labelled(tune, self.label)
        self._train_targets = [self._target(m_lab.label(i)) for i in range(len(m_lab))]
        self.chance_ = self.task_.chance(self._train_targets)
        return m_lab, t_lab, [*unlabelled, *tune_unlabelled]

    def _cached_columns(self) -> set[str]:
        # frozen encoders that are never unfrozen train on their cached outputs
        return super()._cached_columns() if self.unfreeze_after is None else set()

    def _make_model(self, cached: set[str] | None = None) -> torch.nn.Module:
        if getattr(self, "_auto_fitted", None) is not None:
            return torch.nn.Module()  # its members are saved beside (auto/)
        return MultimodalModel(self._encoders, self.fusion, self.dim_, self.task_.n_outputs,
                               cached=cached, drop_modality=self.drop_modality,
                               fusion_options=self.fusion_options, dropout=self.dropout)

    def _objective(self, train: Manifest) -> torch.nn.Module:
        from polymodal.objectives import SupervisedLoss

        if self.class_weights not in (None, "balanced"):
            raise ValueError(f"class_weights must be 'balanced' or None, got "
                             f"{self.class_weights!r}")
        self.class_weights_ = self.task_.class_weights(self._train_targets) \
            if self.class_weights == "balanced" else None
        return SupervisedLoss(self.task_, self.class_weights_)

    def _schedule(self) -> str:
        return self.schedule

    def _callbacks(self) -> list[Any]:
        from polymodal.training import UnfreezeEncoders

        return [UnfreezeEncoders(self.unfreeze_after)] if self.unfreeze_after is not None \
            else []

    def _label_transform(self) -> Any:
        return self._target

    def _target(self, value: Any) -> Any:
        return self.task_.target(value)

    # -- inference ----------------------------------------------------------------
    @torch.no_grad()
    def _outputs(self, data: Any, *, drop: Sequence[str] = (), embed: bool = False,
                 noise: Noise | None = None) -> tuple[np.ndarray, Manifest]:
        self._check_fitted()
        m = self._read_for_inference(data)
        if self.is_auto:  # its probabilities come through _proba
            return self.auto_.embed(m), m
        self.model_.eval()
        rows: list[np.ndarray] = []
        for batch in self._loader(m, shuffle=False, noise=noise):
            for c in drop:
                batch.present[c] = torch.zeros_like(batch.present[c])
            out = self.model_.embed(batch) if embed else self.model_(batch)
            rows.append(out.float().cpu().numpy())
        return (np.concatenate(rows) if rows else np.zeros((0, 1))), m

    def _read_for_inference(self, data: Any) -> Rows:
        """``data`` read as the training data was (its roles); a column the model was
        trained on and the manifest lacks is that modality absent from every row (as an
        empty column is), said once on the console."""
        shards = open_rows(data)
        if shards is not None:
            return shards_to_predict(shards, self.columns_, self.is_auto)
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

    def _proba(self, data: Any, *, drop: Sequence[str] = (), noise: Noise | None = None
               ) -> tuple[np.ndarray, Manifest]:
        """The task's probabilities (values) of each row, and the rows read."""
        if self.is_auto:
            m = self._read_for_inference(data)
            return self.auto_.proba(m, drop=drop, noise=noise), m
        out, m = self._outputs(data, drop=drop, noise=noise)
        return self.task_.proba(out), m

    def predict_proba(self, data: Any) -> pd.DataFrame:
        """Class probabilities (one column per class), or values for regression."""
        proba, m = self._proba(data)
        return self.task_.frame(self.task_.outputs_for(proba), m.ids(), self.label)

    def predict(self, data: Any) -> pd.Series:
        """The predicted label of each row (indexed by row id)."""
        proba = self.predict_proba(data)
        return self.task_.predictions(proba, self.label)

    def _labelled_targets(self, m: Manifest) -> tuple[list[int], np.ndarray]:
        keep = [i for i in range(len(m)) if m.label(i) is not None]
        if not keep:
            raise ValueError(f"{m.source}: no row has a label to evaluate against")
        return keep, np.stack([np.asarray(self._target(m.label(i))) for i in keep])

    def evaluate(self, data: Any, *, drop: Sequence[str] = (),
                 noise: Noise | None = None) -> dict[str, float]:
        """The task's metrics: accuracy, macro-F1, ROC-AUC, log loss; RMSE, MAE, R2.

        ``drop`` evaluates as if those columns were absent from every row; ``noise``
        corrupts columns or modalities at a level in [0, 1] (see
        :func:`polymodal.data.noise.noisy`) or with a function of one decoded cell
        (``noise={"audio": noisy_snr("audio", -10)}``)."""
        proba, m = self._proba(data, drop=drop, noise=noise)
        keep, y = self._labelled_targets(m)
        return self.task_.metrics(y, proba[keep])

    def embed(self, data: Any) -> np.ndarray:
        """The fused representation of each row, (N, d)."""
        return self._outputs(data, embed=True)[0]

    # -- save / load ----------------------------------------------------------------
    def _fitted(self) -> dict[str, Any]:
        return {"problem_type": self.problem_type_, "classes": self.classes_,
                "columns": self.columns_, "roles": self.roles_, "dim": self.dim_,
                "batch_size": self.batch_size_,
                "encoders": {c: {"name": n, "options": o}
                             for c, (n, o) in self.encoder_specs_.items()},
                "init_from": getattr(self, "init_from_", None),
                "chance": getattr(self, "chance_", None),
                **({"auto": auto_fitted(self.auto_)} if self.is_auto else {})}

    def _restore(self, fitted: Mapping[str, Any]) -> None:
        self.problem_type_ = fitted["problem_type"]
        self.task_ = make_task(self.problem_type_, fitted["classes"])
        self.classes_ = self.task_.classes
        self.class_index_ = self.task_.index
        self.columns_, self.roles_ = fitted["columns"], fitted["roles"]
        self.dim_, self.batch_size_ = fitted["dim"], fitted["batch_size"]
        self.init_from_ = fitted.get("init_from")
        self.chance_ = fitted.get("chance")  # absent from models saved before it
        self._auto_fitted = fitted.get("auto")

    def _after_save(self, folder: Path) -> None:
        if self.is_auto:
            save_members(self.auto_, folder)
        log = self.training_log()
        if log is not None:  # the learning curves travel with the model
            from polymodal import plots

            log.to_csv(folder / TRAINING_LOG, index=False)
            plots.learning_curves(log, folder / "learning_curves.png",
                                  chance=getattr(self, "chance_", None),
                                  title=f"learning curves: {self.label}")

    def _after_load(self, folder: Path) -> None:
        self.saved_log_ = folder / TRAINING_LOG
        if getattr(self, "_auto_fitted", None) is not None:
            self.auto_ = load_members(self._auto_fitted, self.task_, folder,
                                      seed=self.seed, batch_size=self.batch_size_)
