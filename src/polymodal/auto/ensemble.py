"""Which candidates the kept model is made of, and their weights: Caruana et al.'s
greedy selection with replacement (the ensemble AutoGluon builds), scored by the
task's loss on probabilities (log loss; squared error for a number), on the rows
where the choice is sturdiest (:func:`choose`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.heads import Task

if TYPE_CHECKING:
    from polymodal.auto.model import Trial

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


#: a network joins the kept model when it beats the cross-validated mix on the
#: validation rows in this share of bootstrap resamples of them
SURE = 0.95
RESAMPLES = 200


def choose(task: Any, done: list[Trial], y_val: np.ndarray, bad: set[int], seed: int = 0
            ) -> dict[str, float]:
    """The weights of the kept model.

    The scikit-learn candidates are judged on every row (cross-validation): the best
    single one, or a greedy ensemble started from it where that scores at least as well
    on those rows. A network has answers on the validation rows only, often a few
    dozen, where chance decides which of two close models looks better: it joins
    (a greedy ensemble on those rows, started from it) only where it beats that mix in
    :data:`SURE` of bootstrap resamples of them. Without cross-validated candidates,
    every choice is made on the validation rows."""
    keep = [i for i in range(len(y_val)) if i not in bad]
    crossed = [t for t in done if t.oof is not None]
    others = [t for t in done if t.oof is None]
    y = y_val[keep]
    val = {t.spec.name: t.val_proba[keep] for t in done}
    if not crossed:
        return _mix_from(task, y, val, _best(task, y, val, others))
    oof = {t.spec.name: t.oof[0] for t in crossed}
    weights = _mix_from(task, crossed[0].oof[1], oof, _best_own(task, crossed))
    if not others or not len(y):
        return weights
    mixed = mix({n: val[n] for n in weights}, weights)
    net = _best(task, y, {t.spec.name: val[t.spec.name] for t in others}, others)
    if _surely_better(task, y, val[net], mixed, seed):
        return _mix_from(task, y, val, net)
    return weights


def _judged(task: Any, y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(main metric, -loss), both higher for better."""
    score = float(task.metrics(y, p)[task.main_metric])
    lower = bool(getattr(task, "lower_is_better", False))
    return (-score if lower else score, -proba_loss(task, y, p))


def _best(task: Any, y: np.ndarray, probas: dict[str, np.ndarray], among: list[Trial]) -> str:
    if not len(y):
        return among[0].spec.name
    return max((t.spec.name for t in among), key=lambda n: _judged(task, y, probas[n]))


def _best_own(task: Any, among: list[Trial]) -> str:
    lower = bool(getattr(task, "lower_is_better", False))

    def key(t: Trial) -> tuple[float, float]:
        score = -np.inf if t.score is None or np.isnan(t.score) else t.score
        return (-score if lower else score, -(np.inf if t.loss is None else t.loss))
    return max(among, key=key).spec.name


def _mix_from(task: Any, y: np.ndarray, probas: dict[str, np.ndarray], start: str
              ) -> dict[str, float]:
    """A greedy ensemble started from ``start``, where it scores at least as well as
    ``start`` alone on ``y`` (score and loss), else ``start`` alone."""
    if len(probas) == 1 or not len(y):
        return {start: 1.0}
    weights = greedy_weights(task, y, probas, start=start)
    single, mixed = _judged(task, y, probas[start]), _judged(task, y, mix(probas, weights))
    return weights if mixed[0] >= single[0] and mixed[1] >= single[1] else {start: 1.0}


def _surely_better(task: Any, y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int
                   ) -> bool:
    """Whether ``a`` scores above ``b`` (the main metric) in :data:`SURE` of bootstrap
    resamples of the rows."""
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        wins += _judged(task, y[rows], a[rows])[0] > _judged(task, y[rows], b[rows])[0]
    return wins >= SURE * RESAMPLES
