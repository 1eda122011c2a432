"""What an ``auto`` fit keeps: its candidates (tried, scored, timed), the extractors
their features come from, and the members of the kept model with their weights.

Prediction computes each feature set a member needs once, runs every member and
averages their probabilities by weight; a column dropped (``drop``) or corrupted
(``noise``) is so for every member alike, as in a single network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from polymodal.auto.ensemble import mix
from polymodal.auto.features import Block, Extractor, stack
from polymodal.auto.heads import head_proba
from polymodal.data import Manifest
from polymodal.data.noise import corruption_for
from polymodal.heads import Task


@dataclass(frozen=True)
class CandidateSpec:
    """A recipe: the feature sets it reads and its head ("network": a fused network
    trained by the estimator core)."""

    name: str
    features: tuple[str, ...]
    head: str
    description: str


@dataclass
class Trial:
    """One candidate as the search left it."""

    spec: CandidateSpec
    status: str = "not tried"  # "ok", "error: ...", "skipped: ..."
    score: float | None = None  # the task's main metric on the validation rows
    loss: float | None = None  # log loss / squared error on them
    fit_seconds: float = 0.0  # its head's (or network's) fit, features not counted
    feature_seconds: float = 0.0  # the features it read, when computed for it
    finished_at: float | None = None  # seconds from the start of the fit
    rows_per_second: float | None = None  # prediction, features included
    scored_on: str = ""  # "5-fold cross-validation (N rows)" or "validation (N rows)"
    model: Any = field(default=None, repr=False)  # a scikit-learn pipeline / Predictor
    val_proba: np.ndarray | None = field(default=None, repr=False)
    oof: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class AutoModel:
    """The candidates of a fit and the kept mix of them (see the module docstring)."""

    def __init__(self, task: Task, columns: Sequence[str], modalities: Mapping[str, str],
                 extractors: dict[str, dict[str, Extractor]], trials: list[Trial],
                 weights: dict[str, float], *, seed: int = 0, batch_size: int = 64) -> None:
        self.task, self.columns, self.modalities = task, list(columns), dict(modalities)
        self.extractors, self.trials, self.weights = extractors, trials, dict(weights)
        self.seed, self.batch_size = seed, batch_size

    def trial(self, name: str) -> Trial:
        """The candidate called ``name``."""
        for t in self.trials:
            if t.spec.name == name:
                return t
        raise KeyError(f"no candidate {name!r}; candidates: {[t.spec.name for t in self.trials]}")

    def network(self) -> Any:
        """The fitted network candidate (a Predictor) if one was fitted, else None."""
        return next((t.model for t in self.trials if t.spec.head == "network"
                     and t.model is not None), None)

    def describe(self) -> str:
        """What was kept, in words."""
        if len(self.weights) == 1:
            return f"kept {next(iter(self.weights))}"
        parts = ", ".join(f"{n} ({w:.2f})" for n, w in
                          sorted(self.weights.items(), key=lambda kv: -kv[1]))
        return f"kept a weighted ensemble of {parts}"

    def leaderboard(self) -> pd.DataFrame:
        """Every candidate: validation score, loss, fit seconds, prediction rows/s,
        its weight in the kept model, and what happened to it."""
        rows = []
        for t in self.trials:
            rows.append({"model": t.spec.name, f"val_{self.task.main_metric}": t.score,
                         "val_loss": t.loss, "fit_s": round(t.fit_seconds, 2),
                         "feature_s": round(t.feature_seconds, 2),
                         "predict_rows_s": None if t.rows_per_second is None
                         else round(t.rows_per_second, 1),
                         "finished_at_s": None if t.finished_at is None
                         else round(t.finished_at, 1),
                         "scored_on": t.scored_on,
                         "weight": round(self.weights.get(t.spec.name, 0.0), 3),
                         "status": t.status, "description": t.spec.description})
        board = pd.DataFrame(rows)
        key = f"val_{self.task.main_metric}"
        return board.sort_values(key, ascending=bool(getattr(self.task, "lower_is_better",
                                                             False)),
                                 na_position="last", kind="stable").reset_index(drop=True)

    # -- prediction ---------------------------------------------------------------
    def blocks(self, m: Manifest, feature_set: str, *, drop: Sequence[str] = (),
               noise: Mapping[str, Any] | None = None, media_cache: Any = None,
               cache_root: Any = None) -> list[Block]:
        """``feature_set``'s block of each column over ``m`` (dropped ones absent)."""
        out = []
        for c in self.columns:
            block, _ = self.extractors[feature_set][c].block(
                m, on_error="raise", noise=corruption_for(noise, c, self.modalities[c], self.seed),
                cache_root=cache_root, media_cache=media_cache, batch_size=self.batch_size)
            out.append(block.dropped() if c in drop else block)
        return out

    def proba(self, m: Manifest, *, drop: Sequence[str] = (),
              noise: Mapping[str, Any] | None = None, members: Sequence[str] | None = None
              ) -> np.ndarray:
        """The probabilities (values, for regression) of the kept mix on ``m``, or of
        ``members`` averaged equally (one name: that candidate alone)."""
        weights = self.weights if members is None else \
            {n: 1 / len(members) for n in members}
        features: dict[str, Any] = {}
        probas = {}
        for name in weights:
            t = self.trial(name)
            if t.spec.head == "network":
                probas[name] = t.model._proba(m, drop=drop, noise=noise)[0]
                continue
            for s in t.spec.features:
                if s not in features:
                    features[s] = self.blocks(m, s, drop=drop, noise=noise)
            x = stack([b for s in t.spec.features for b in features[s]])
            probas[name] = head_proba(t.model, x, self.task)
        out = np.asarray(mix(probas, weights), dtype=np.float64)
        if self.task.single_label:  # float32 networks: rows that sum to 1 exactly
            out /= np.clip(out.sum(axis=1, keepdims=True), 1e-12, None)
        return out

    def embed(self, m: Manifest) -> np.ndarray:
        """Each row as the kept model's first feature set sees it (dense), or, kept
        alone, the network's fused representation."""
        sets = [s for n in self.weights for s in self.trial(n).spec.features]
        if not sets:  # a network of its own towers alone: its fused representation
            return self.network().embed(m)
        x = stack(self.blocks(m, sets[0]))
        return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)
