"""The scikit-learn heads of the ``auto`` fit: linear, a small MLP, gradient-boosted
trees, each made for the task (classes, several labels, a number).

A head takes a feature matrix (:func:`polymodal.auto.features.stack`) and the task's
targets, and gives probabilities in the task's layout: a column per class for
single-label classification, per label for multilabel, the value for regression.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polymodal.heads import Task

#: the head kinds, cheapest first
HEAD_KINDS = ("linear", "mlp", "gbt")


def supports(kind: str, task: Task) -> str | None:
    """Why head ``kind`` cannot learn ``task`` (None when it can)."""
    if kind == "gbt" and task.several_labels:
        return "gradient-boosted trees take one target; not tried for multilabel"
    return None


def make_head(kind: str, task: Task, *, seed: int, sparse: bool, balanced: bool,
              n_rows: int) -> Any:
    """An unfitted scikit-learn pipeline for head ``kind`` on ``task``'s targets."""
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, StandardScaler

    regression = not task.has_classes
    weight = "balanced" if balanced else None
    scale = MaxAbsScaler() if sparse else StandardScaler()
    if kind == "linear":
        if regression:
            return make_pipeline(scale, Ridge(alpha=10.0))
        lr = LogisticRegression(C=0.5 if sparse else 0.1, max_iter=2000,
                                class_weight=weight, random_state=seed)
        return make_pipeline(scale, OneVsRestClassifier(lr) if task.several_labels
                             else lr)
    if kind == "mlp":
        options = {"hidden_layer_sizes": (256,), "alpha": 1e-3, "max_iter": 300,
                   "early_stopping": n_rows >= 50, "n_iter_no_change": 15,
                   "learning_rate_init": 1e-3, "random_state": seed}
        return make_pipeline(scale, MLPRegressor(**options) if regression
                             else MLPClassifier(**options))
    if kind == "gbt":
        components = max(2, min(48, n_rows // 4))
        reduce = TruncatedSVD(components, random_state=seed) if sparse \
            else PCA(components, random_state=seed)
        options = {"max_iter": 300, "learning_rate": 0.08, "early_stopping": n_rows >= 100,
                   "random_state": seed}
        return make_pipeline(scale, reduce, HistGradientBoostingRegressor(**options)
                             if regression else
                             HistGradientBoostingClassifier(class_weight=weight, **options))
    raise ValueError(f"unknown head {kind!r}; heads: {list(HEAD_KINDS)}")


def fit_head(head: Any, x: Any, y: np.ndarray, task: Task) -> Any:
    """Fit ``head`` on features ``x`` and targets ``y`` (dense scikit-learn layout)."""
    import scipy.sparse as sp

    needs_dense = not _takes_sparse(head)
    head.fit(x.toarray() if needs_dense and sp.issparse(x) else x, y)
    return head


def _takes_sparse(head: Any) -> bool:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return not isinstance(head.steps[-1][1], HistGradientBoostingClassifier |
                          HistGradientBoostingRegressor)


def head_proba(head: Any, x: Any, task: Task) -> np.ndarray:
    """Probabilities (or values) of ``head`` on ``x``, a column per class of the task
    even when the training rows lacked some class (that column is 0)."""
    if not task.has_classes:
        return np.asarray(head.predict(x), dtype=np.float64).reshape(-1, 1)
    p = np.asarray(head.predict_proba(x), dtype=np.float64)
    n = len(task.classes)
    if task.several_labels:
        return p
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
    seen = np.asarray(head.classes_)
    if len(seen) == n and (seen == np.arange(n)).all():
        return p
    full = np.zeros((p.shape[0], n))
    full[:, seen.astype(int)] = p
    return full


def targets(task: Task, labels: list[Any]) -> np.ndarray:
    """The task's targets of ``labels`` as scikit-learn takes them."""
    out = [task.target(v) for v in labels]
    if task.several_labels:
        return np.stack([np.asarray(t, dtype=np.int64) for t in out])
    return np.asarray(out, dtype=np.float64 if not task.has_classes else np.int64)
