"""The ``auto`` fit: look at the data, try the candidates cheapest first within the
time limit, score each on the validation rows, fit ensemble weights there, keep the
best (AutoGluon's MultiModalPredictor for the experience; fusion and missing
modalities are the estimator core's).

A candidate that fails is kept in the leaderboard with its error and the search goes
on; once one candidate has finished, a candidate the time limit leaves no room for is
skipped; the first one always runs, so even a spent limit returns a model (and says
so).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.auto.candidates import candidate_specs, fit_sklearn, network_encoders
from polymodal.auto.ensemble import choose, proba_loss
from polymodal.auto.features import Block, Extractor, extractor_name, feature_cache_root, stack
from polymodal.auto.heads import supports, targets
from polymodal.auto.model import AutoModel, Trial
from polymodal.data import Manifest
from polymodal.data.errors import OnError, Problem
from polymodal.data.media_cache import open_media_cache
from polymodal.progress import console

if TYPE_CHECKING:
    from polymodal.predictor import Predictor

#: rows timed to measure a feature set's live extraction speed
TIMED_ROWS = 32


class _Features:
    """The feature sets computed so far for the training and validation rows."""

    def __init__(self, pred: Predictor, m: Manifest, tune: Manifest, *, on_error: OnError,
                 progress: bool) -> None:
        self.pred, self.m, self.tune = pred, m, tune
        self.on_error, self.progress = on_error, progress
        self.media = open_media_cache(pred.media_cache)
        self.cache_root = feature_cache_root(pred.cache_dir, self.media, pred.run_dir_)
        self.extractors: dict[str, dict[str, Extractor]] = {}
        self.train: dict[str, list[Block]] = {}
        self.val: dict[str, list[Block]] = {}
        self.seconds: dict[str, float] = {}
        self.row_seconds: dict[str, float] = {}
        self.problems: dict[tuple[str, int], Problem] = {}  # (part, row) -> problem
        self.failed: dict[str, str] = {}

    def get(self, name: str, deadline: float | None) -> None:
        """Compute feature set ``name`` unless done (``failed`` says why it is not)."""
        if name in self.train or name in self.failed:
            return
        start = time.perf_counter()
        modalities = self.pred.column_modalities_
        try:
            extractors = {c: Extractor(c, modalities[c], extractor_name(name, modalities[c]))
                          .fit(self.m, self.on_error) for c in self.pred.columns_}
            parts = {}
            for part, rows in (("train", self.m), ("val", self.tune)):
                blocks = []
                for ex in extractors.values():
                    block, bad = ex.block(rows, on_error=self.on_error, noise=None,
                                          cache_root=self.cache_root, media_cache=self.media,
                                          batch_size=self.pred.batch_size_, deadline=deadline,
                                          progress=self.progress)
                    blocks.append(block)
                    self.problems.update({(part, r): p for r, p in bad.items()})
                parts[part] = blocks
        except TimeoutError as exc:
            self.failed[name] = f"skipped: {exc} (what was encoded is cached for next time)"
            return
        self.extractors[name] = extractors
        self.train[name], self.val[name] = parts["train"], parts["val"]
        self.seconds[name] = time.perf_counter() - start
        self.row_seconds[name] = self._live_seconds_per_row(extractors)

    def _live_seconds_per_row(self, extractors: dict[str, Extractor]) -> float:
        """Seconds a row takes to decode and encode with no cache, on a few rows."""
        sample = self.tune if len(self.tune) else self.m
        sample = sample.subset(list(range(min(TIMED_ROWS, len(sample)))))
        start = time.perf_counter()
        for ex in extractors.values():
            ex.block(sample, on_error="skip", noise=None, cache_root=None, media_cache=None,
                     batch_size=self.pred.batch_size_)
        return (time.perf_counter() - start) / max(len(sample), 1)

    def bad_rows(self, part: str) -> set[int]:
        return {r for (p, r) in self.problems if p == part}


def _say(progress: bool, text: str) -> None:
    if progress:
        console.print(text)


def fit_auto(pred: Predictor, train: Any, tuning: Any = None, *,
             time_limit: float | None = None, on_error: OnError = "raise",
             devices: int | str = 1, progress: bool = True, callbacks: list[Any] | None = None,
             resume: bool = False, init_from: Any = None, workers: int = 0,
             num_nodes: int = 1) -> Predictor:
    """Fit ``pred`` (``preset="auto"``) by trying its candidates; see the module."""
    from polymodal.training.skips import training_skip_report

    if resume:
        raise ValueError("an auto fit is not resumed: run it again (the feature cache "
                         "makes the second run fast), or resume a single network "
                         "(preset='pretrained' or 'fast')")
    start = time.time()
    deadline = None if time_limit is None else start + float(time_limit)
    m, tune, problems = pred._read_parts(train, tuning, on_error)
    pred._learn_targets(m, tune)
    pred.columns_ = pred._choose_columns(m, init_from)
    pred.roles_ = m.schema.to_dict()
    pred.column_modalities_ = {c: m.modality_columns[c].value for c in pred.columns_}
    pred.batch_size_ = pred.batch_size or 64
    pred.dim_ = pred.dim or 128
    source = m.source
    m, tune, left_out = pred._training_rows(m, tune)
    problems = [*problems, *left_out]
    pred._make_run_dir()
    task = pred.task_
    specs = candidate_specs(pred.candidates or None)
    _say(progress, f"auto: {len(m)} training rows, {len(tune)} validation rows, "
         f"{task.name}, columns {', '.join(pred.columns_)}; trying "
         f"{', '.join(s.name for s in specs)}"
         + ("" if time_limit is None else f" within {time_limit:g} s"))
    feats = _Features(pred, m, tune, on_error=on_error, progress=progress)
    y_train = targets(task, [m.label(i) for i in range(len(m))])
    y_val = targets(task, [tune.label(i) for i in range(len(tune))])
    trials = [Trial(s) for s in specs]
    for trial in trials:
        spec = trial.spec
        finished = any(t.ok for t in trials)
        if finished and deadline is not None and time.time() >= deadline:
            trial.status = "skipped: the time limit was reached"
            continue
        why_not = supports(spec.head, task) or _too_few_to_judge(spec, trials, len(tune))
        if why_not:
            trial.status = f"skipped: {why_not}"
            continue
        _say(progress, f"auto: trying {spec.name}")
        try:
            if spec.head == "network":
                _fit_network(pred, trial, m, tune, feats, deadline if finished else None,
                             on_error=on_error, devices=devices, progress=progress,
                             callbacks=callbacks, init_from=init_from, workers=workers,
                             num_nodes=num_nodes)
            else:
                _fit_sklearn_trial(pred, trial, feats, y_train, y_val,
                                   deadline if finished else None)
        except Exception as exc:  # any failure is the candidate's, listed with it
            trial.status = f"error: {type(exc).__name__}: {exc}"
            _say(progress, f"auto: {spec.name} failed: {trial.status[7:]}")
            continue
        if not trial.ok:
            continue
        trial.finished_at = time.time() - start
        keep = [i for i in range(len(tune)) if i not in feats.bad_rows("val")] \
            if spec.head != "network" else list(range(len(tune)))
        _score(task, trial, y_val, keep)
        _say(progress, f"auto: {spec.name}: val {task.main_metric} {trial.score:.4f} "
             f"({trial.fit_seconds:.1f} s)")
    done = [t for t in trials if t.ok]
    if not done:
        raise RuntimeError("auto: no candidate could be fitted:\n" + "\n".join(
            f"  {t.spec.name}: {t.status}" for t in trials))
    weights = choose(task, done, y_val, feats.bad_rows("val"), pred.seed)
    pred.auto_ = AutoModel(task, pred.columns_, pred.column_modalities_, feats.extractors,
                           trials, weights, seed=pred.seed, batch_size=pred.batch_size_)
    if deadline is not None and time.time() > deadline:
        _say(progress, f"auto: the time limit ({time_limit:g} s) was reached; "
             f"{len(done)} of {len(trials)} candidates finished")
    _say(progress, f"auto: {pred.auto_.describe()}")
    pred.model_ = _placeholder()
    pred._encoders, pred.encoder_specs_ = {}, {}  # its towers live in its members
    skipped = [*problems, *feats.problems.values()]
    pred.skipped_ = training_skip_report(source, skipped, {}, {}, on_error, pred.run_dir_)
    pred.fit_seconds_ = time.time() - start
    return pred


def _fit_sklearn_trial(pred: Predictor, trial: Trial, feats: _Features, y_train: np.ndarray,
                       y_val: np.ndarray, deadline: float | None) -> None:
    """A scikit-learn candidate. Up to :data:`CV_MAX_ROWS` rows it is scored by k-fold
    cross-validation over the training and validation rows together (a score over
    every row, not over a hold-out of a few dozen) and then fitted on all of them;
    its out-of-fold answers on the validation rows are what the ensemble mixes."""
    spec = trial.spec
    before = sum(feats.seconds.values())
    for s in spec.features:
        feats.get(s, deadline)
        if s in feats.failed:
            trial.status = feats.failed[s]
            return
    trial.feature_seconds = sum(feats.seconds.values()) - before
    keep = [i for i in range(len(feats.m)) if i not in feats.bad_rows("train")]
    keep_val = [i for i in range(len(feats.tune)) if i not in feats.bad_rows("val")]
    x_train = _rows(stack([b for s in spec.features for b in feats.train[s]]), keep)
    x_val = stack([b for s in spec.features for b in feats.val[s]])
    balanced = pred.class_weights == "balanced"
    folds = _folds(pred.task_, np.concatenate([y_train[keep], y_val[keep_val]]), pred.seed)
    if folds is None:
        trial.model, trial.val_proba, trial.fit_seconds = fit_sklearn(
            spec, pred.task_, x_train, y_train[keep], x_val, seed=pred.seed, balanced=balanced)
        trial.scored_on = f"validation ({len(keep_val)} rows)"
    else:
        x_pool = _vstack(x_train, _rows(x_val, keep_val))
        y_pool = np.concatenate([y_train[keep], y_val[keep_val]])
        oof, seconds = None, 0.0
        for fit_rows, test_rows in folds:
            _, proba, took = fit_sklearn(spec, pred.task_, x_pool[fit_rows], y_pool[fit_rows],
                                         x_pool[test_rows], seed=pred.seed, balanced=balanced)
            oof = np.zeros((len(y_pool), proba.shape[1])) if oof is None else oof
            oof[test_rows], seconds = proba, seconds + took
        trial.model, _, took = fit_sklearn(spec, pred.task_, x_pool, y_pool, x_val[:0],
                                           seed=pred.seed, balanced=balanced)
        trial.fit_seconds = seconds + took
        trial.oof = (oof, y_pool)
        trial.val_proba = np.zeros((len(feats.tune), oof.shape[1]))
        trial.val_proba[keep_val] = oof[len(keep):]
        trial.scored_on = f"{len(folds)}-fold cross-validation ({len(y_pool)} rows)"
    start = time.perf_counter()
    trial.model.predict(x_val) if x_val.shape[0] else None
    head_row = (time.perf_counter() - start) / max(x_val.shape[0], 1)
    row = sum(feats.row_seconds[s] for s in spec.features) + head_row
    trial.rows_per_second = 1 / row if row > 0 else None
    trial.status = "ok"


#: scikit-learn candidates are cross-validated up to this many rows
CV_MAX_ROWS = 3000
CV_FOLDS = 5


def _folds(task: Any, y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The folds of k-fold cross-validation over ``y`` (stratified for one label per
    row), or None where there are too many rows or a class too small for two folds."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(y) > CV_MAX_ROWS or len(y) < 2 * CV_FOLDS:
        return None
    if task.single_label:
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest < 2:
            return None
        splitter: Any = StratifiedKFold(min(CV_FOLDS, smallest), shuffle=True,
                                        random_state=seed)
    else:
        splitter = KFold(CV_FOLDS, shuffle=True, random_state=seed)
    return [(a, b) for a, b in splitter.split(np.zeros(len(y)), y)]


def _vstack(a: Any, b: Any) -> Any:
    import scipy.sparse as sp

    return sp.vstack([a, b], format="csr") if sp.issparse(a) else np.vstack([a, b])


#: a network is trained only where this many validation rows can judge it (or where
#: no cross-validated candidate finished)
MIN_NETWORK_VAL_ROWS = 50


def _too_few_to_judge(spec: Any, trials: list[Trial], val_rows: int) -> str | None:
    """Why a network is not worth training here: its best epoch is chosen on the
    validation rows, so on a few dozen of them its score there flatters it (on the
    Sonic Pi samples, 11 rows once kept a network 0.13 below the linear candidate on
    the test rows), and nothing else can judge it."""
    if spec.head != "network" or val_rows >= MIN_NETWORK_VAL_ROWS:
        return None
    if not any(t.ok and t.oof is not None for t in trials):
        return None
    return (f"{val_rows} validation rows, fewer than {MIN_NETWORK_VAL_ROWS} to judge a "
            "network by (its best epoch is chosen on them); tuning=... gives more")


def _rows(x: Any, keep: list[int]) -> Any:
    return x[keep] if len(keep) != x.shape[0] else x


def _fit_network(pred: Predictor, trial: Trial, m: Manifest, tune: Manifest,
                 feats: _Features, deadline: float | None, **fit_options: Any) -> None:
    """A fused network by the estimator core, on the pretrained towers (their outputs
    already in the feature cache) or, for ``scratch-network``, the 'fast' preset."""
    from polymodal.predictor import Predictor

    pretrained = bool(trial.spec.features)
    if pretrained:
        feats.get("pretrained", deadline)
        if "pretrained" in feats.failed:
            trial.status = feats.failed["pretrained"]
            return
    encoders = network_encoders(feats.extractors["pretrained"], pred.columns_) \
        if pretrained else {}
    settings = {k: v for k, v in pred.config().__dict__.items()
                if k not in ("preset", "candidates", "encoders", "path", "problem_type",
                             "modalities", "cache_dir")}
    sub = Predictor(**settings, preset="pretrained" if pretrained else "fast",
                    encoders={**encoders, **pred.encoders}, modalities=pred.columns_,
                    problem_type=pred.problem_type_, cache_dir=feats.cache_root,
                    path=pred.run_dir_ / trial.spec.name)
    limit = None if deadline is None else max(deadline - time.time(), 1.0)
    start = time.perf_counter()
    sub.fit(m, tune, time_limit=limit, **fit_options)
    trial.fit_seconds = time.perf_counter() - start
    if list(sub.classes_) != list(pred.classes_):
        raise RuntimeError(f"the network learnt classes {sub.classes_}, not {pred.classes_}")
    sub.model_.cached = set(sub._cache_loaders)  # validation reads the cached towers
    try:
        trial.val_proba = sub._proba(tune)[0].astype(np.float64) if len(tune) \
            else np.zeros((0, 1))
        if pred.task_.single_label and len(tune):
            trial.val_proba /= trial.val_proba.sum(axis=1, keepdims=True)
    finally:
        sub.model_.cached = set()
    timed = tune.subset(list(range(min(TIMED_ROWS, len(tune)))))
    begin = time.perf_counter()
    sub._proba(timed) if len(timed) else None
    trial.rows_per_second = len(timed) / max(time.perf_counter() - begin, 1e-9) \
        if len(timed) else None
    trial.model = sub
    trial.status = "ok"


def _score(task: Any, trial: Trial, y_val: np.ndarray, keep: list[int]) -> None:
    if trial.oof is not None:
        proba, y = trial.oof
        trial.score = float(task.metrics(y, proba)[task.main_metric])
        trial.loss = proba_loss(task, y, proba)
        return
    if not trial.scored_on:
        trial.scored_on = f"validation ({len(keep)} rows)"
    if not keep:
        trial.score, trial.loss = float("nan"), float("nan")
        return
    proba, y = trial.val_proba[keep], y_val[keep]
    trial.score = float(task.metrics(y, proba)[task.main_metric])
    trial.loss = proba_loss(task, y, proba)


def _placeholder() -> Any:
    """The module an auto fit saves weights of: none (its members are saved beside)."""
    import torch

    return torch.nn.Module()
