"""Weights for an ensemble of candidates, fitted on the validation rows: Caruana et
al.'s greedy selection with replacement (the ensemble AutoGluon builds), scored by the
task's loss on probabilities (log loss; squared error for a number)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from polymodal.heads import Task

ROUNDS = 25


def proba_loss(task: Task, y: np.ndarray, proba: np.ndarray) -> float:
    """The loss selection minimises: log loss of the true class (single-label),
    binary log loss per label (multilabel), mean squared error (regression)."""
    eps = 1e-6
    if not task.has_classes:
        return float(np.mean((proba[:, 0] - y) ** 2))
    p = np.clip(proba, eps, 1 - eps)
    if task.several_labels:
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(y)), y.astype(int)])))


def greedy_weights(task: Task, y: np.ndarray, probas: Mapping[str, np.ndarray],
                   rounds: int = ROUNDS, start: str | None = None) -> dict[str, float]:
    """Weights (summing to 1) of the candidates whose average of probabilities has the
    lowest loss on ``y``: each round adds the candidate (again, possibly) that lowers
    it most; the best round's mix is kept. ``start`` begins the mix with that candidate
    (the one chosen by a sturdier score). Ties go to the earlier candidate."""
    names = list(probas)
    if not names:
        return {}
    counts = dict.fromkeys(names, 0)
    total = np.zeros_like(next(iter(probas.values())), dtype=np.float64)
    best_loss, best_counts = np.inf, dict(counts)
    first = 1
    if start is not None:
        counts[start], total = 1, total + probas[start]
        best_loss, best_counts, first = proba_loss(task, y, total), dict(counts), 2
    for r in range(first, rounds + 1):
        losses = [proba_loss(task, y, (total + probas[n]) / r) for n in names]
        pick = names[int(np.argmin(losses))]
        counts[pick] += 1
        total += probas[pick]
        if min(losses) < best_loss - 1e-12:
            best_loss, best_counts = min(losses), dict(counts)
    n = sum(best_counts.values())
    return {k: v / n for k, v in best_counts.items() if v}


def mix(probas: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted average of the members' probabilities."""
    return sum(w * probas[n] for n, w in weights.items())  # type: ignore[return-value]
