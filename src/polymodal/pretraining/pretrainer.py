"""Contrastive pretraining on unlabelled rows, and what a shared space gives for free:
cross-modal retrieval and zero-shot classification::

    pre = Pretrainer(preset="pretrained").fit("pairs.csv")       # image <-> caption
    pre.evaluate_retrieval("test.csv")                            # R@1/5/10, mAP
    pre.zero_shot("photos.csv", column="image", classes=["cat", "dog"])
    Predictor(label="y").fit("few_labels.csv", init_from=pre.save("pre/"))
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polymodal.checkpoint import build_encoders, load_weights, read_checkpoint, write_checkpoint
from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.dataset import EpochShuffleSampler
from polymodal.data.errors import ManifestError, OnError
from polymodal.data.schema import Role
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.cache import CachedFeatures, content_key
from polymodal.encoders.registry import build_encoder
from polymodal.model import module_key
from polymodal.objectives.contrastive import ContrastiveLoss
from polymodal.presets import encoder_spec, resolve_preset
from polymodal.pretraining.model import ContrastiveModel
from polymodal.pretraining.retrieval import co_occurrence, retrieval_metrics

KIND = "contrastive-pretraining"
DEFAULT_TEMPLATES = ("{}", "a photo of a {}.", "a picture of a {}.")


class Pretrainer:
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
    """

    def __init__(self, modalities: Sequence[str] | None = None,
                 encoders: Mapping[str, str | tuple[str, dict[str, Any]]] | None = None,
                 preset: str = "fast", dim: int | None = None, projection: str = "mlp",
                 anchor: str | None = None, temperature: float = 0.07,
                 learn_temperature: bool = True, queue_size: int = 0,
                 freeze: Sequence[str] = (), max_epochs: int | None = None,
                 batch_size: int | None = None, lr: float | None = None, seed: int = 0,
                 path: str | os.PathLike[str] | None = None, patience: int = 5,
                 cache_dir: str | os.PathLike[str] | None = None,
                 precision: str | None = None, roles: Mapping[str, str] | None = None
                 ) -> None:
        self.modalities = list(modalities) if modalities is not None else None
        self.roles = dict(roles or {})
        self.encoders = dict(encoders or {})
        self.preset = preset
        self.dim = dim
        self.projection = projection
        self.anchor = anchor
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.queue_size = queue_size
        self.freeze = list(freeze)
        self.max_epochs, self.batch_size, self.lr = max_epochs, batch_size, lr
        self.seed = seed
        self.path = path
        self.patience = patience
        self.cache_dir = cache_dir
        self.precision = precision

    # -- checks -------------------------------------------------------------------
    def _columns(self, m: Manifest) -> list[str]:
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

    def _check_pairs(self, m: Manifest, loss: ContrastiveLoss) -> dict[str, int]:
        """Rows per pair that hold both sides; an error if no pair has two rows."""
        has = {c: m.present(c) for c in loss.columns}
        counts = {f"{a}~{b}": int((has[a] & has[b]).sum()) for a, b in loss.pairs()}
        if max(counts.values(), default=0) < 2:
            raise ValueError(f"{m.source}: no row holds two of the columns {loss.columns} "
                             f"together (rows per pair: {counts}); contrastive pretraining "
                             "learns from rows where modalities co-occur")
        return counts

    # -- fit ----------------------------------------------------------------------
    def fit(self, train: Any, tuning: Any = None, *, time_limit: float | None = None,
            devices: int | str = 1, progress: bool = True, on_error: OnError = "raise",
            resume: bool = False, callbacks: list[Any] | None = None) -> Pretrainer:
        """Pretrain on ``train`` (a manifest path, DataFrame or Manifest); labels, if any,
        are not used. Without ``tuning``, a split column gives "train" and "val",
        otherwise 5% of the rows (seeded) are held out."""
        import lightning as L

        from polymodal.pretraining.module import LitContrastive
        from polymodal.training import fit_run, make_trainer
        from polymodal.training.run import remaining_time
        from polymodal.training.skips import decoded_cells, training_skip_report

        start = time.time()
        m = Manifest.read(train, roles=self.roles or None)
        if tuning is None:
            m, tune = m.training_split(self.seed, fraction=0.05, minimum=2)
        else:
            tune = Manifest.read(tuning, roles=self.roles or None)
        self.columns_ = self._columns(m)
        self.roles_ = m.schema.to_dict()
        anchor = self._anchor_column(self.columns_, m)
        preset = resolve_preset(self.preset)
        self.dim_ = self.dim or preset.dim
        self.batch_size_ = self.batch_size or preset.batch_size
        L.seed_everything(self.seed, workers=True, verbose=False)
        self.encoder_specs_: dict[str, tuple[str, dict[str, Any]]] = {}
        self._encoders: dict[str, ModalityEncoder] = {}
        for c in self.columns_:
            name, options = encoder_spec(self.encoders, c, m.modality_columns[c], preset)
            self.encoder_specs_[c] = (name, options)
            enc = build_encoder(name, **options)
            if c in self.freeze or m.modality_columns[c].value in self.freeze:
                enc.freeze()
            self._encoders[c] = enc
        loss = ContrastiveLoss(self.columns_, self.dim_, anchor=anchor,
                               temperature=self.temperature,
                               learn_temperature=self.learn_temperature,
                               queue_size=self.queue_size)
        self.pair_rows_ = self._check_pairs(m, loss)
        for c, enc in self._encoders.items():
            if not enc.is_fitted:
                enc.fit(decoded_cells(m, c, on_error))
        self.run_dir_ = Path(self.path or Path("runs") / time.strftime("pretrain-%Y%m%d-%H%M%S"))
        self.run_dir_.mkdir(parents=True, exist_ok=True)
        frozen = {c for c, e in self._encoders.items() if not e.trainable}
        cache_root = Path(self.cache_dir or self.run_dir_ / "feature-cache")
        self._cache_loaders = {c: CachedFeatures(self._encoders[c], cache_root)
                               for c in frozen}
        for c, features in self._cache_loaders.items():
            for part in (m, tune):
                features.fill(part, c, batch_size=self.batch_size_, show_progress=progress)
        self.model_ = ContrastiveModel(self._encoders, self.dim_, self.projection, cached=frozen)
        self.loss_ = loss
        lit = LitContrastive(self.model_, loss, lr=self.lr or preset.lr)
        epochs = preset.max_epochs if self.max_epochs is None else self.max_epochs
        trainer = make_trainer(self.run_dir_, max_epochs=epochs,
                               patience=self.patience,
                               time_limit=remaining_time(start, time_limit), devices=devices,
                               has_validation=len(tune) > 1, progress=progress,
                               precision=self.precision,
                               callbacks=callbacks, resume=resume)
        train_loader = self._loader(m, shuffle=True, on_error=on_error, drop_last=len(m) >
                                    self.batch_size_)
        val_loader = self._loader(tune, shuffle=False, on_error=on_error)
        self.ended_ = fit_run(trainer, lit, train_loader, val_loader if len(tune) > 1 else None,
                              self.run_dir_, resume=resume)
        self.model_.cached = set()
        self.model_.eval()
        self.pairs_seen_ = int(trainer.global_step) * self.batch_size_
        self.skipped_ = training_skip_report(
            m.source, lit.skip_report.problems,
            {"train": train_loader.dataset, "val": val_loader.dataset}, lit.visited,
            on_error, self.run_dir_)
        self.fit_seconds_ = time.time() - start
        return self

    def _dataset(self, m: Manifest, on_error: OnError = "raise",
                 columns: Sequence[str] | None = None) -> MultimodalDataset:
        columns = list(columns or self.columns_)
        loaders = {c: f for c, f in self._cache_loaders.items()
                   if c in self.model_.cached and c in columns}
        return MultimodalDataset(m, columns=columns,
                                 transforms={c: self._encoders[c].preprocess for c in columns},
                                 on_error=on_error, cell_loaders=loaders)

    def _loader(self, m: Manifest, *, shuffle: bool, on_error: OnError = "raise",
                columns: Sequence[str] | None = None, drop_last: bool = False
                ) -> torch.utils.data.DataLoader:
        ds = self._dataset(m, on_error, columns)
        sampler = EpochShuffleSampler(len(ds), self.seed) if shuffle else None
        return ds.loader(self.batch_size_, sampler=sampler, drop_last=drop_last)

    # -- inference ----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this Pretrainer is not fitted: call fit(train) or "
                               "Pretrainer.load(path) first")

    def _read(self, data: Any) -> Manifest:
        return Manifest.read(data).with_roles(self.roles_)

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
                                                          if c in m.table.columns])]
        self.model_.eval()
        out = {c: np.full((len(m), self.dim_), np.nan, dtype=np.float32) for c in columns}
        for batch in self._loader(m, shuffle=False, columns=columns):
            rows = batch.indices.numpy()
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

    # -- zero-shot ----------------------------------------------------------------
    def _text_column(self, text_column: str | None) -> str:
        if text_column is not None:
            return self._column(text_column)
        texts = [c for c in self.columns_ if self.roles_[c]["role"] == Role.TEXT.value]
        if len(texts) != 1:
            raise ValueError(f"zero-shot needs one text column to embed the class names; "
                             f"text columns: {texts}: pass text_column=")
        return texts[0]

    def class_embeddings(self, classes: Sequence[str], *, text_column: str | None = None,
                         templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
        """(C, dim): each class name put into every template, embedded by the text
        tower, averaged and normalised (CLIP's prompt ensemble)."""
        column = self._text_column(text_column)
        prompts = [t.format(c) for c in classes for t in templates]
        e = self.embed_values(column, prompts).reshape(len(classes), len(templates), -1)
        mean = e.mean(axis=1)
        return mean / np.linalg.norm(mean, axis=1, keepdims=True).clip(1e-12)

    def zero_shot_proba(self, data: Any, column: str, classes: Sequence[str], *,
                        text_column: str | None = None,
                        templates: Sequence[str] = DEFAULT_TEMPLATES) -> pd.DataFrame:
        """Class probabilities of each row's ``column`` (an image, a sound) from its
        similarity to the class names, with no labelled training."""
        self._check_fitted()
        if not len(classes):
            raise ValueError("zero-shot classification needs at least one class name")
        m = self._read(data)
        emb = self.embed(m, [self._column(column)])[column]
        classes_emb = self.class_embeddings(classes, text_column=text_column,
                                            templates=templates)
        logits = self.loss_.scale().item() * (emb @ classes_emb.T)
        logits = logits - np.nanmax(logits, axis=1, keepdims=True)
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return pd.DataFrame(proba, columns=list(classes), index=m.ids())

    def zero_shot(self, data: Any, column: str, classes: Sequence[str], **kw: Any
                  ) -> pd.Series:
        """The most similar class name for each row (NaN where the row lacks ``column``)."""
        proba = self.zero_shot_proba(data, column, classes, **kw)
        values = proba.to_numpy()
        present = ~np.isnan(values).all(axis=1)  # pandas refuses idxmax of an all-NaN row
        best = np.full(len(values), None, dtype=object)
        best[present] = np.asarray(proba.columns, dtype=object)[
            np.nanargmax(values[present], axis=1)] if present.any() else []
        return pd.Series(best, index=proba.index, name="zero_shot")

    def evaluate_zero_shot(self, data: Any, column: str, label: str,
                           classes: Sequence[str] | None = None, **kw: Any) -> dict[str, float]:
        """Zero-shot accuracy against ``label`` (class names: the label's values unless
        given) over the rows that have ``column`` and a label."""
        m = self._read(data)
        if label not in m.table.columns:
            raise ManifestError(f"{m.source}: label column {label!r} is not in the manifest")
        y = m.table[label].astype("string")
        classes = list(classes) if classes is not None else sorted(y.dropna().unique())
        pred = self.zero_shot(m, column, classes, **kw).to_numpy()
        keep = y.notna().to_numpy() & pd.notna(pred)
        accuracy = float(np.mean(pred[keep] == y.to_numpy()[keep])) if keep.any() else 0.0
        return {"accuracy": accuracy, "chance": 1 / len(classes), "rows": float(keep.sum())}

    # -- retrieval ----------------------------------------------------------------
    def evaluate_retrieval(self, data: Any, directions: Sequence[tuple[str, str]] | None = None,
                           ks: Sequence[int] = (1, 5, 10)) -> pd.DataFrame:
        """Recall@K, median rank and mAP for each direction (query column -> gallery
        column; default every ordered pair) over the rows holding both. Identical
        files or texts count once, and every gallery item that a query shares a row
        with is a correct answer."""
        self._check_fitted()
        m = self._read(data)
        columns = [c for c in self.columns_ if c in m.table.columns]
        directions = list(directions or [(a, b) for a in columns for b in columns if a != b])
        used = sorted({c for d in directions for c in d})
        emb = self.embed(m, used)
        keys = {c: [content_key(m, r, c) if not np.isnan(emb[c][r, 0]) else None
                    for r in range(len(m))] for c in used}  # each file hashed once
        rows = []
        for q, g in directions:
            both = [r for r in range(len(m))
                    if keys[q][r] is not None and keys[g][r] is not None]
            if not both:
                continue
            q_keys = [keys[q][r] for r in both]
            g_keys = [keys[g][r] for r in both]
            queries, gallery, relevant = co_occurrence(q_keys, g_keys)
            first_q: dict[str, int] = {}
            first_g: dict[str, int] = {}
            for r, qk, gk in zip(both, q_keys, g_keys, strict=True):
                first_q.setdefault(qk, r)
                first_g.setdefault(gk, r)
            metrics = retrieval_metrics(emb[q][[first_q[k] for k in queries]],
                                        emb[g][[first_g[k] for k in gallery]], relevant, ks)
            rows.append({"direction": f"{q} -> {g}", "gallery": len(gallery), **metrics})
        if not rows:
            raise ValueError(f"{m.source}: no row holds two pretrained columns together "
                             f"({columns}): nothing to retrieve")
        return pd.DataFrame(rows)

    # -- save / load ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the encoders, heads and temperature (safetensors) and the settings
        (YAML); fine-tune from it with ``Predictor.fit(..., init_from=path)``."""
        self._check_fitted()
        config = {"polymodal": 1, "kind": KIND, "columns": self.columns_,
                  "roles": self.roles_, "dim": self.dim_, "projection": self.projection,
                  "anchor": self.loss_.anchor, "batch_size": self.batch_size_,
                  "encoders": {c: {"name": n, "options": o}
                               for c, (n, o) in self.encoder_specs_.items()},
                  "preset": self.preset, "seed": self.seed}
        return write_checkpoint(path, _saved_parts(self.model_, self.loss_), config)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Pretrainer:
        """Load a saved Pretrainer (nothing pickled)."""
        config, state, extra = read_checkpoint(path, "pretrained checkpoint")
        if config.get("kind") != KIND:
            raise ValueError(f"{path}: not a pretrained checkpoint (kind "
                             f"{config.get('kind')!r}); a saved Predictor loads with "
                             "Predictor.load")
        p = cls(preset=config["preset"], dim=config["dim"], projection=config["projection"],
                anchor=config["anchor"], seed=config["seed"])
        p.columns_, p.roles_, p.dim_ = config["columns"], config["roles"], config["dim"]
        p.batch_size_ = config["batch_size"]
        p.encoder_specs_ = {c: (e["name"], e["options"]) for c, e in config["encoders"].items()}
        p._encoders = build_encoders(p.encoder_specs_, extra)
        p.model_ = ContrastiveModel(p._encoders, p.dim_, p.projection)
        p.loss_ = ContrastiveLoss(p.columns_, p.dim_, anchor=config["anchor"])
        p._cache_loaders = {}
        load_weights(_saved_parts(p.model_, p.loss_), state, extra, path)
        p.model_.eval()
        return p


def _saved_parts(model: ContrastiveModel, loss: ContrastiveLoss) -> torch.nn.Module:
    """What a checkpoint holds: the encoders, the heads and the temperature (not the
    loss's queue)."""
    holder = torch.nn.Module()
    holder.encoders, holder.heads = model.encoders, model.heads
    holder.log_scale = loss.log_scale
    return holder


def pretrained_encoders(path: str | os.PathLike[str], columns: Sequence[str],
                        roles: Mapping[str, Role],
                        requested: Mapping[str, Any] | None = None
                        ) -> tuple[dict[str, ModalityEncoder], dict[str, tuple[str, dict]]]:
    """The encoders of a saved model (pretrained or supervised) for ``columns``, with
    their weights and vocabularies, to fine-tune from.

    Raises:
        ValueError: the checkpoint lacks one of ``columns``, holds it as another
            modality, or was made with other encoders than ``requested`` names.
    """
    config, state, extra = read_checkpoint(path, "checkpoint to initialise from")
    saved = config.get("encoders") or {}
    missing = [c for c in columns if c not in saved]
    if missing:
        raise ValueError(f"{path} has encoders for {sorted(saved)}, not for {missing}: "
                         f"choose those columns with modalities=[...], or pretrain on them")
    specs: dict[str, tuple[str, dict]] = {}
    for c in columns:
        name, options = saved[c]["name"], saved[c]["options"]
        saved_role = (config.get("roles") or {}).get(c, {}).get("role")
        if saved_role and saved_role != roles[c].value:
            raise ValueError(f"{path}: column {c!r} was {saved_role} there but is "
                             f"{roles[c].value} here")
        want = (requested or {}).get(c, (requested or {}).get(roles[c].value))
        if want is not None:
            want_name, want_options = (want, {}) if isinstance(want, str) else want
            if want_name != name or (want_options and dict(want_options) != options):
                raise ValueError(f"{path}: column {c!r} was pretrained with encoder {name} "
                                 f"{options}, but encoders= asks for {want_name} "
                                 f"{dict(want_options)}; drop that entry to use the "
                                 "pretrained one, or pretrain with it")
        specs[c] = (name, options)
    encoders = build_encoders(specs, extra)
    for c, enc in encoders.items():
        prefix = f"encoders.{module_key(c)}."
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            missing_keys, unexpected = enc.load_state_dict(sub, strict=False)
        except RuntimeError as exc:  # a shape that does not fit
            raise ValueError(f"{path}: the saved {c!r} encoder does not fit {specs[c]}: "
                             f"{str(exc).splitlines()[0]}") from None
        missing_keys = [k for k in missing_keys if not k.endswith("_extra_state")]
        if unexpected or (missing_keys and not (enc.pretrained and not enc.trainable)):
            raise ValueError(f"{path}: the saved {c!r} encoder does not fit {specs[c]} "
                             f"(missing {missing_keys[:5]}, unexpected {unexpected[:5]})")
    return encoders, specs
