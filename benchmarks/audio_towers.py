"""Which audio features describe real non-speech sounds best: Whisper's encoder
(``whisper-encoder``) against MFCC statistics (20 MFCC means and standard deviations,
the practitioner's ten-line baseline), each under the same scikit-learn
LogisticRegression, on Tux Paint's sound effects labelled by their stamp's category."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.report import Section

MIN_PER_CLASS = 7  # categories with fewer sounds are left out (too few to score)


def _sounds(quick: bool) -> tuple[list[Path], np.ndarray]:
    """Each distinct sound effect of tuxpaint once, with its stamp's category."""
    import pandas as pd

    from polymodal.data.bundled import make_dataset

    manifest = Path(make_dataset("tuxpaint", limit=3 if quick else None))
    folder = manifest.parent
    table = pd.read_csv(manifest).dropna(subset=["sound"])
    table = table.drop_duplicates("sound")
    counts = table["label"].value_counts()
    table = table[table["label"].isin(counts[counts >= (2 if quick else MIN_PER_CLASS)].index)]
    return [folder / p for p in table["sound"]], table["label"].to_numpy()


def _mfcc_stats(waves: list[np.ndarray]) -> np.ndarray:
    import librosa

    out = []
    for w in waves:
        m = librosa.feature.mfcc(y=w, sr=16_000, n_mfcc=20)
        out.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    return np.stack(out)


def _whisper(waves: list[np.ndarray]) -> np.ndarray:
    from polymodal.encoders.registry import build_encoder

    enc = build_encoder("whisper-encoder")
    return np.concatenate([enc.encode(waves[i: i + 16]).pooled.numpy()
                           for i in range(0, len(waves), 16)])


def run(quick: bool = False) -> Section:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from polymodal.data.media import decode_audio

    paths, labels = _sounds(quick)
    waves = [decode_audio(p) for p in paths]
    section = Section(
        key="audio-towers", title="Audio features on real non-speech sounds: Whisper's "
        "encoder against MFCC statistics",
        command="python -m benchmarks --only audio-towers" + (" --quick" if quick else ""),
        columns=["features", "dims", "accuracy (mean ± sd)", "macro-F1", "feature s",
                 "ms per clip"])
    folds = min(5, int(np.unique(labels, return_counts=True)[1].min()))
    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=3, random_state=0)
    for name, featurise in (("MFCC statistics (20 means + 20 stds; baseline)", _mfcc_stats),
                            ("whisper-encoder (Whisper tiny.en states, mean)", _whisper)):
        start = time.perf_counter()
        x = featurise(waves)
        seconds = time.perf_counter() - start
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        scores = cross_validate(model, x, labels, cv=cv, scoring=["accuracy", "f1_macro"])
        acc, f1 = scores["test_accuracy"], scores["test_f1_macro"]
        section.rows.append([name, f"{x.shape[1]}", f"{acc.mean():.3f} ± {acc.std():.3f}",
                             f"{f1.mean():.3f}", f"{seconds:.1f}",
                             f"{1000 * seconds / len(waves):.0f}"])
    majority = np.unique(labels, return_counts=True)[1].max() / len(labels)
    section.notes = (
        f"{len(waves)} distinct sound effects of Tux Paint's stamps (the `tuxpaint` set: "
        "recordings and effects from the tuxpaint-stamps package), labelled by their "
        f"stamp's category; {len(set(labels))} categories with at least "
        f"{MIN_PER_CLASS} sounds (majority class {majority:.3f}). Standardised features, "
        f"LogisticRegression, {folds}-fold stratified cross-validation repeated 3 times "
        "(mean ± sd over the 15 folds). Feature seconds: decoding excluded, one process "
        "on 2 cores (CTranslate2 one thread, int8; the first call loads the model).")
    return section
