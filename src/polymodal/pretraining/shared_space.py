"""What a shared embedding space gives for free: zero-shot classification (class names
embedded by the text tower, CLIP's prompt ensemble) and cross-modal retrieval metrics.
A mixin of :class:`~polymodal.pretraining.Pretrainer` (it reads the fitted towers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data.errors import ManifestError
from polymodal.data.schema import Role
from polymodal.encoders.cache import content_key
from polymodal.pretraining.retrieval import co_occurrence, retrieval_metrics

DEFAULT_TEMPLATES = ("{}", "a photo of a {}.", "a picture of a {}.")


class SharedSpace:
    """Zero-shot and retrieval on a fitted contrastive model."""

    # -- zero-shot ----------------------------------------------------------------
    def _text_column(self: Any, text_column: str | None) -> str:
        if text_column is not None:
            return self._column(text_column)
        texts = [c for c in self.columns_ if self.roles_[c]["role"] == Role.TEXT.value]
        if len(texts) != 1:
            raise ValueError(f"zero-shot needs one text column to embed the class names; "
                             f"text columns: {texts}: pass text_column=")
        return texts[0]

    def class_embeddings(self: Any, classes: Sequence[str], *, text_column: str | None = None,
                         templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
        """(C, dim): each class name put into every template, embedded by the text
        tower, averaged and normalised (CLIP's prompt ensemble)."""
        column = self._text_column(text_column)
        prompts = [t.format(c) for c in classes for t in templates]
        e = self.embed_values(column, prompts).reshape(len(classes), len(templates), -1)
        mean = e.mean(axis=1)
        return mean / np.linalg.norm(mean, axis=1, keepdims=True).clip(1e-12)

    def zero_shot_proba(self: Any, data: Any, column: str, classes: Sequence[str], *,
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

    def zero_shot(self: Any, data: Any, column: str, classes: Sequence[str], **kw: Any
                  ) -> pd.Series:
        """The most similar class name for each row (NaN where the row lacks ``column``)."""
        proba = self.zero_shot_proba(data, column, classes, **kw)
        values = proba.to_numpy()
        present = ~np.isnan(values).all(axis=1)  # pandas refuses idxmax of an all-NaN row
        best = np.full(len(values), None, dtype=object)
        best[present] = np.asarray(proba.columns, dtype=object)[
            np.nanargmax(values[present], axis=1)] if present.any() else []
        return pd.Series(best, index=proba.index, name="zero_shot")

    def evaluate_zero_shot(self: Any, data: Any, column: str, label: str,
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
    def evaluate_retrieval(self: Any, data: Any,
                           directions: Sequence[tuple[str, str]] | None = None,
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

