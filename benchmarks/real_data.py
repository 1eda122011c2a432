"""The real-data suite: the default ``auto`` fit against the ten-line baselines a
practitioner writes, on five labelled sets the project did not make
(:mod:`benchmarks.real_sets`), 3 seeds each (a stratified 75 / 25 split per seed).

Per set and seed, in one run: the auto fit (accuracy, macro-F1, fit seconds,
prediction rows/s, the accuracy it would have returned after 10 s and 60 s and at the
end: an anytime curve read from the finish time of each candidate), each of its
candidates on the test rows, and two baselines timed from the raw files: handcrafted
features + LogisticRegression, frozen pretrained features + LogisticRegression.
Seed 0 runs with empty media and feature caches (cold: what a first fit costs); seeds 1
and 2 reuse them (a second fit on the same files), and their fit seconds are reported
apart. Resumes from ``bench-results/real-data/results.jsonl``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.real_sets import SETS, make
from benchmarks.report import RESULTS, ResultLog, Section

SEEDS = (0, 1, 2)
TIME_LIMIT = 300.0
CHECKPOINTS = (10.0, 60.0)


def _split(table: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    return train_test_split(table, test_size=0.25, stratify=table["label"], random_state=seed)


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro"))}


def _auto(train: pd.DataFrame, test: pd.DataFrame, seed: int, work: Path, limit: float
          ) -> dict[str, Any]:
    from polymodal.predictor import Predictor

    start = time.perf_counter()
    pred = Predictor(label="label", seed=seed, path=work / f"run-{seed}",
                     media_cache=work / "media").fit(train, time_limit=limit, progress=False)
    fit = time.perf_counter() - start
    y = test["label"].astype(str).to_numpy()
    begin = time.perf_counter()
    answer = pred.predict(test).astype(str).to_numpy()
    rows_s = len(test) / (time.perf_counter() - begin)
    out = {"fit_s": fit, "rows_s": rows_s, **_scores(y, answer),
           "kept": pred.auto_.describe(), "candidates": {}}
    m = pred._read_for_inference(test)
    finished = []
    for t in pred.auto_.trials:
        if not t.ok:
            out["candidates"][t.spec.name] = {"status": t.status}
            continue
        proba = pred.auto_.proba(m, members=[t.spec.name])
        guess = np.asarray(pred.classes_, dtype=object)[proba.argmax(axis=1)].astype(str)
        out["candidates"][t.spec.name] = {**_scores(y, guess), "fit_s": t.fit_seconds,
                                          "val": t.score, "finished_at": t.finished_at}
        finished.append((t.finished_at, t.score, out["candidates"][t.spec.name]["accuracy"]))
    for at in CHECKPOINTS:  # the best-validated candidate finished by then
        done = [f for f in finished if f[0] is not None and f[0] <= at]
        out[f"at_{at:g}s"] = max(done, key=lambda f: f[1])[2] if done else None
    return out


def _decoded(table: pd.DataFrame, column: str) -> list[Any]:
    from polymodal.data.media import decode_audio, decode_image

    if column == "audio":
        return [decode_audio(p) for p in table[column]]
    if column == "image":
        return [decode_image(p) for p in table[column]]
    return table[column].fillna("").astype(str).tolist()


def _handcrafted(column: str, values: list[Any], fitted: dict[str, Any]) -> np.ndarray:
    """What a practitioner writes: MFCC means and deviations, a colour histogram and
    a thumbnail, TF-IDF."""
    if column == "audio":
        import librosa

        out = []
        for w in values:
            m = librosa.feature.mfcc(y=w, sr=16_000, n_mfcc=20)
            out.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
        return np.stack(out)
    if column == "image":
        out = []
        for img in values:
            rgb = np.asarray(img.convert("RGB").resize((16, 16)), dtype=np.float32) / 255
            hist = [np.histogram(rgb[..., c], bins=8, range=(0, 1))[0] / 256 for c in range(3)]
            out.append(np.concatenate([rgb.reshape(-1), *hist]))
        return np.stack(out)
    from sklearn.feature_extraction.text import TfidfVectorizer

    if column not in fitted:
        fitted[column] = TfidfVectorizer().fit(values)
    return fitted[column].transform(values).toarray()


def _pretrained(column: str, values: list[Any], fitted: dict[str, Any]) -> np.ndarray:
    from polymodal.encoders.registry import build_encoder

    name = {"audio": "whisper-encoder", "image": "efficientnet-lite0", "text": "minilm"}
    if column not in fitted:
        fitted[column] = build_encoder(name.get(column, "minilm")).freeze()
    enc = fitted[column]
    import torch

    with torch.no_grad():
        return np.concatenate([enc.encode(values[i: i + 32]).pooled.float().numpy()
                               for i in range(0, len(values), 32)])


def _baseline(kind: str, train: pd.DataFrame, test: pd.DataFrame, seed: int
              ) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    featurise = _handcrafted if kind == "handcrafted" else _pretrained
    columns = [c for c in ("audio", "image", "name") if c in train.columns]
    start = time.perf_counter()
    fitted: dict[str, Any] = {}
    x_train = np.hstack([featurise(c, _decoded(train, c), fitted) for c in columns])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000,
                                                               random_state=seed))
    model.fit(x_train, train["label"].astype(str))
    fit = time.perf_counter() - start
    begin = time.perf_counter()
    x_test = np.hstack([featurise(c, _decoded(test, c), fitted) for c in columns])
    guess = model.predict(x_test)
    rows_s = len(test) / (time.perf_counter() - begin)
    return {"fit_s": fit, "rows_s": rows_s,
            **_scores(test["label"].astype(str).to_numpy(), guess)}


def _mean_sd(values: list[float]) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return "—" if not len(v) else f"{v.mean():.3f} ± {v.std():.3f}"


def run(quick: bool = False) -> Section:
    root = RESULTS / "real-data"
    log = ResultLog(root / ("results-quick.jsonl" if quick else "results.jsonl"),
                    ("set", "seed", "method"))
    seeds, limit = ((0,), 60.0) if quick else (SEEDS, TIME_LIMIT)
    section = Section(
        key="real-data", title="The default fit on real data it never saw: five "
        "labelled sets against ten-line baselines",
        command="python -m benchmarks --only real-data" + (" --quick" if quick else ""),
        columns=["set", "method", "accuracy (3 seeds)", "macro-F1", "fit s (cold)",
                 "fit s (cached)", "predict rows/s", "acc @10 s", "acc @60 s",
                 f"acc @{limit:g} s"])
    for real in SETS:
        manifest = make(real, root / "sets", quick)
        table = pd.read_csv(manifest)
        work = root / "work" / real.name
        for seed in seeds:
            if seed == seeds[0] and (real.name, seed, "auto") not in log:
                shutil.rmtree(work, ignore_errors=True)  # cold caches for the first seed
            train, test = _split(table, seed)
            os.environ["POLYMODAL_FEATURE_CACHE"] = str(work / "features")
            if (real.name, seed, "auto") not in log:
                log.add({"set": real.name, "seed": seed, "method": "auto",
                         **_auto(train, test, seed, work, limit)})
            for kind in ("handcrafted", "pretrained"):
                if (real.name, seed, kind) not in log:
                    log.add({"set": real.name, "seed": seed, "method": kind,
                             **_baseline(kind, train, test, seed)})
        _rows(section, real.name, [log[(real.name, s, "auto")] for s in seeds],
              {k: [log[(real.name, s, k)] for s in seeds] for k in ("handcrafted",
                                                                    "pretrained")})
    section.notes = _notes(limit)
    return section


def _rows(section: Section, name: str, auto: list[dict[str, Any]],
          baselines: dict[str, list[dict[str, Any]]]) -> None:
    def fit(runs: list[dict[str, Any]], cached: bool) -> str:
        v = [r["fit_s"] for r in (runs[1:] if cached else runs[:1])]
        return f"{np.mean(v):.1f}" if v else "—"

    section.rows.append([name, "**auto (the default)**",
                         _mean_sd([r["accuracy"] for r in auto]),
                         _mean_sd([r["macro_f1"] for r in auto]), fit(auto, False),
                         fit(auto, True), f"{np.mean([r['rows_s'] for r in auto]):.0f}",
                         _mean_sd([r["at_10s"] for r in auto]),
                         _mean_sd([r["at_60s"] for r in auto]),
                         _mean_sd([r["accuracy"] for r in auto])])
    for cand in auto[0]["candidates"]:
        runs = [r["candidates"].get(cand, {}) for r in auto]
        if "accuracy" not in runs[0]:
            section.rows.append([name, f"· {cand}", runs[0].get("status", "—")[:60],
                                 "", "", "", "", "", "", ""])
            continue
        section.rows.append([name, f"· {cand}", _mean_sd([r.get("accuracy") for r in runs]),
                             _mean_sd([r.get("macro_f1") for r in runs]),
                             f"{runs[0]['fit_s']:.1f} (head)", "", "", "", "", ""])
    for kind, label in (("handcrafted", "baseline: handcrafted + LogisticRegression"),
                        ("pretrained", "baseline: pretrained + LogisticRegression")):
        runs = baselines[kind]
        section.rows.append([name, label, _mean_sd([r["accuracy"] for r in runs]),
                             _mean_sd([r["macro_f1"] for r in runs]), fit(runs, False),
                             fit(runs, True), f"{np.mean([r['rows_s'] for r in runs]):.0f}",
                             "", "", ""])


def _notes(limit: float) -> str:
    cards = "; ".join(f"**{s.name}**: {s.kind}, {s.source}, {s.licence}; {s.words}"
                      for s in SETS)
    return (
        f"Each set split 75 / 25, stratified, once per seed (0, 1, 2); accuracy and "
        f"macro-F1 on the test quarter, mean ± sd over the seeds. The auto fit runs "
        f"with `time_limit={limit:g}` and the default candidates; a candidate's row is "
        "its own accuracy on the test rows (the head's fit seconds beside it). "
        "`acc @10 s` / `@60 s`: the test accuracy of the candidate with the best "
        "validation score among those finished that many seconds after the fit "
        "started (— when none had), i.e. what a user stopping it then would have got; "
        "the last column is the kept model at the end. Fit seconds count reading, "
        "decoding, features and training; `cold` is seed 0 with empty caches, "
        "`cached` the mean of seeds 1 and 2 with the media and feature caches that "
        "seed 0 left (the baselines cache nothing: their two numbers are the same "
        "work). Baselines: scikit-learn LogisticRegression (max_iter=1000) on "
        "standardised features: 20 MFCC means + 20 deviations (librosa) for sounds, a "
        "16x16 thumbnail + an 8-bin histogram per channel for pictures, TF-IDF for "
        "text; or EfficientNet-Lite0 / MiniLM / Whisper-encoder pooled vectors. "
        f"Data cards: {cards}.")
