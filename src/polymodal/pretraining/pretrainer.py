"""Contrastive pretraining on unlabelled rows, and what a shared space gives for free:
cross-modal retrieval and zero-shot classification::

    pre = Pretrainer(preset="pretrained").fit("pairs.csv")       # image <-> caption
    pre.evaluate_retrieval("test.csv")                            # R@1/5/10, mAP
    pre.zero_shot("photos.csv", column="image", classes=["cat", "dog"])
    Predictor(label="y").fit("few_labels.csv", init_from=pre.save("pre/"))

The fit is the estimator core's (:mod:`polymodal.estimator`); what is the Pretrainer's
own is the contrastive task: an embedding head per tower and InfoNCE across the pairs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from polymodal.config import PretrainerConfig
from polymodal.data import Manifest
from polymodal.data.errors import OnError, Problem
from polymodal.data.rows import (
    Rows,
    open_rows,
    problems_opening,
    read_rows,
    row_numbers,
)
from polymodal.estimator import Estimator
from polymodal.fusion.base import module_key
from polymodal.objectives.contrastive import ContrastiveLoss
from polymodal.pretraining.init_from import pretrained_encoders
from polymodal.pretraining.model import ContrastiveModel
from polymodal.pretraining.shared_space import DEFAULT_TEMPLATES, SharedSpace

__all__ = ["DEFAULT_TEMPLATES", "KIND", "Pretrainer", "pretrained_encoders"]

KIND = "contrastive-pretraining"


class Pretrainer(SharedSpace, Estimator):
    """Learn a shared embedding space from rows that hold several modalities.

    Args:
        modalities: columns (or modality names) to embed; default every modality column.
        encoders: per modality or column, an encoder name or (name, options).
        preset: where the encoders not named come from ("fast", "tiny", "pretrained").
        dim: the shared embedding size (default: the preset's).
        projection: "mlp" (default) or "linear" embedding heads.
        anchor: None pairs every two columns; a column (or modality) name pairs every
            other column with it only (ImageBind).
        temperature: initial softmax temperature; learnt unless ``learn_temperature``
            is False (clamped at 0.01 as CLIP does).
        queue_size: past embeddings per column used as extra negatives (MoCo's queue):
            a large effective batch on a small machine. 0 uses the batch only.
        freeze: columns or modalities whose towers stay locked (LiT); pretrained towers
            are locked already unless their options say ``train=True``.
        max_epochs, batch_size, lr: training sizes (default: the preset's).
        seed: the seed of the run.
        path: the run folder (checkpoints, logs); default ``runs/pretrain-<time>``.
        patience: early stopping on the validation loss.
        cache_dir: where locked towers cache their outputs (default: the run folder).
        precision: Lightning's precision; default: mixed on a GPU that supports it.
        roles: column roles that override the inferred ones (``{"sample": "id"}``).
        memory_cache_mb: during ``fit``, keep each decoded and preprocessed picture or
            sound in memory up to this many MiB, so it is decoded once per run, not once
            per epoch; 0 decodes every time.
        media_cache: a folder where ``fit`` keeps each decoded and preprocessed picture
            and sound on disk, by content and encoder, so later epochs and later
            runs (any process sharing the folder) decode nothing: "auto" is
            ``$POLYMODAL_MEDIA_CACHE`` or ``~/.cache/polymodal/media`` (20 GB, least
            recently used entries evicted; the default); None or "off" keeps none.
    """


    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = PretrainerConfig
    holdout: ClassVar[tuple[float, int]] = (0.05, 2)
    min_validation_rows: ClassVar[int] = 2
    run_name: ClassVar[str] = "pretrain-%Y%m%d-%H%M%S"
    other_kind_hint: ClassVar[str] = "; a saved Predictor loads with Predictor.load"

    def __init__(self, modalities: Sequence[str] | None = None,
                 encoders: Mapping[str, str | tuple[str, dict[str, Any]]] | None = None,
                 preset: str = "fast", dim: int | None = None, projection: str = "mlp",
                 anchor: str | None = None, temperature: float = 0.07,
                 learn_temperature: bool = True, queue_size: int = 0,
                 freeze: Sequence[str] = (), max_epochs: int | None = None,
                 batch_size: int | None = None, lr: float | None = None, seed: int = 0,
                 path: str | os.PathLike[str] | None = None, patience: int = 5,
                 cache_dir: str | os.PathLike[str] | None = None,
                 precision: str | None = None, roles: Mapping[str, str] | None = None,
                 memory_cache_mb: float = 1024,
                 media_cache: str | os.PathLike[str] | None = "auto") -> None:
        from polymodal.presets import resolve_preset

        resolve_preset(preset)  # an unknown name is refused here, not at fit
        self._store(locals())

    # -- the rows and columns -----------------------------------------------------
    def _read_parts(self, train: Any, tuning: Any, on_error: OnError
                    ) -> tuple[Manifest, Manifest, list[Problem]]:
        """Labels, if any, are not used. Without ``tuning``, a split column gives
        "train" and "val", otherwise 5% of the rows (seeded) are held out."""
        m = read_rows(train, on_error, roles=self.roles or None)
        problems = problems_opening(m)
        if tuning is None:
            m, tune = m.training_split(self.seed, *self.holdout)
        else:
            tune = read_rows(tuning, on_error, roles=self.roles or None)
            problems += problems_opening(tune)
        return m, tune, problems

    def _choose_columns(self, m: Manifest, init_from: Any = None) -> list[str]:
        if init_from is not None:
            raise ValueError("a Pretrainer starts from its encoders' own weights; "
                             "init_from is for Predictor.fit")
        cols = [c for c in m.select_modality_columns(self.modalities)
                if not m.is_empty_column(c)]
        if len(cols) < 2:
            raise ValueError(
                f"{m.source}: contrastive pretraining needs rows with two or more "
                f"modalities, but the only non-empty modality column is {cols}; "
                "add a paired column (a caption, a sound) or train a Predictor instead")
        return cols

    def _anchor_column(self, columns: list[str], m: Manifest) -> str | None:
        if self.anchor is None:
            return None
        if self.anchor in columns:
            return self.anchor
        matching = [c for c in columns if m.modality_columns[c].value == self.anchor]
        if len(matching) != 1:
            raise ValueError(f"anchor {self.anchor!r} must name one of the columns {columns}"
                             f" (or a modality that exactly one of them has)")
        return matching[0]

    def _frozen(self, column: str, m: Manifest) -> bool:
        return column in self.freeze or m.modality_columns[column].value in self.freeze

    def _check_rows(self, m: Manifest) -> None:
        """Rows per pair that hold both sides (``pair_rows_``); an error if no pair has
        two rows."""
        self.loss_ = ContrastiveLoss(self.columns_, self.dim_,
                                     anchor=self._anchor_column(self.columns_, m),
                                     temperature=self.temperature,
                                     learn_temperature=self.learn_temperature,
                                     queue_size=self.queue_size)
        has = {c: m.present(c) for c in self.loss_.columns}
        counts = {f"{a}~{b}": int((has[a] & has[b]).sum()) for a, b in self.loss_.pairs()}
        if max(counts.values(), default=0) < 2:
            raise ValueError(f"{m.source}: no row holds two of the columns "
                             f"{self.loss_.columns} together (rows per pair: {counts}); "
                             "contrastive pretraining learns from rows where modalities "
                             "co-occur")
        self.pair_rows_ = counts

    def _make_model(self, cached: set[str] | None = None) -> ContrastiveModel:
        return ContrastiveModel(self._encoders, self.dim_, self.projection, cached=cached)

    def _objective(self, train: Manifest) -> torch.nn.Module:
        return self.loss_

    def _drop_last(self, m: Manifest) -> bool:
        return len(m) > self.batch_size_

    def _after_fit(self, trainer: Any) -> None:
        self.pairs_seen_ = int(trainer.global_step) * self.batch_size_

    # -- inference ----------------------------------------------------------------
    def _read(self, data: Any) -> Rows:
        shards = open_rows(data)
        return shards if shards is not None else Manifest.read(data).with_roles(self.roles_)

    def _column(self, column: str) -> str:
        if column not in self.columns_:
            raise ValueError(f"column {column!r} was not pretrained; columns: {self.columns_}")
        return column

    @torch.no_grad()
    def embed(self, data: Any, columns: Sequence[str] | None = None
              ) -> dict[str, np.ndarray]:
        """Per column, (N, dim) normalised embeddings of every row; NaN rows where a row
        lacks that column."""
        self._check_fitted()
        m = self._read(data)
        columns = [self._column(c) for c in (columns or [c for c in self.columns_
                                                          if c in m.modality_columns])]
        self.model_.eval()
        out = {c: np.full((len(m), self.dim_), np.nan, dtype=np.float32) for c in columns}
        for batch in self._loader(m, shuffle=False, columns=columns):
            rows = row_numbers(m, batch.indices)
            for c in columns:
                keep = batch.present[c].numpy()
                if keep.any():
                    e = self.model_.embed_column(c, batch.inputs[c], batch.lengths.get(c))
                    out[c][rows[keep]] = e.float().cpu().numpy()[keep]
        return out

    @torch.no_grad()
    def embed_values(self, column: str, values: Sequence[Any], batch_size: int = 256
                     ) -> np.ndarray:
        """(N, dim) normalised embeddings of decoded values of ``column``'s modality:
        strings for text (a query, a class prompt), PIL images, audio arrays."""
        self._check_fitted()
        enc = self.model_.encoder(self._column(column))
        head = self.model_.heads[module_key(column)]
        self.model_.eval()
        parts = [head(enc.encode(list(values[i: i + batch_size])).pooled).cpu().numpy()
                 for i in range(0, len(values), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim_), np.float32)

    # -- save / load ----------------------------------------------------------------
    def _fitted(self) -> dict[str, Any]:
        return {"columns": self.columns_, "roles": self.roles_, "dim": self.dim_,
                "anchor": self.loss_.anchor, "batch_size": self.batch_size_,
                "encoders": {c: {"name": n, "options": o}
                             for c, (n, o) in self.encoder_specs_.items()}}

    def _restore(self, fitted: Mapping[str, Any]) -> None:
        self.columns_, self.roles_, self.dim_ = fitted["columns"], fitted["roles"], fitted["dim"]
        self.batch_size_ = fitted["batch_size"]
        self.loss_ = ContrastiveLoss(self.columns_, self.dim_, anchor=fitted["anchor"])

    def _saved_module(self) -> torch.nn.Module:
        """What a checkpoint holds: the encoders, the heads and the temperature (not the
        loss's queue)."""
        holder = torch.nn.Module()
        holder.encoders, holder.heads = self.model_.encoders, self.model_.heads
        holder.log_scale = self.loss_.log_scale
        return holder
