"""Leave one source out: the heads (:mod:`.heads`) trained on every corpus source but
one, measured on that one against the untrained bridge, on all its captions and on the
*unseen* ones (whose :func:`~.sources.caption_key` no training row has: the honest
number, since the icon themes share the freedesktop names)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polymodal.library.general.features import Features, concat, distinct, source_features
from polymodal.library.general.heads import (
    PER_NAME,
    HeadSettings,
    embed,
    picture_inputs,
    train_heads,
    untrained_weights,
)
from polymodal.library.general.sources import CORPUS, SOURCES, TUNING

#: the gallery size of a measured source (a seeded sample of larger ones)
GALLERY = 1000
#: the sources measured left out (the others are only trained on)
MEASURED = tuple(SOURCES)


def gallery_index(n: int, limit: int = GALLERY) -> np.ndarray:
    """The rows of a source of ``n`` that are measured: all, or a seeded sample (the
    same as ``rows.sample(limit, random_state=0)``)."""
    index = pd.RangeIndex(n).to_series()
    return (index.sample(limit, random_state=0) if n > limit else index).to_numpy()


def training_names(left_out: str) -> list[str]:
    """The corpus sources trained on when ``left_out`` is measured: every other one,
    the tuxpaint stamps' train split among them unless tuxpaint is left out."""
    names = [n for n in CORPUS if n not in (left_out, "tuxpaint")]
    return names if left_out == "tuxpaint" else [TUNING.name, *names]


def load_all(cache: Path, names: list[str] | None = None) -> dict[str, Features]:
    """Every corpus source's features (and the tuning split's), from ``cache``."""
    sources = {**CORPUS, TUNING.name: TUNING}
    return {n: source_features(sources[n], cache) for n in (names or list(sources))}


@dataclass
class Measured:
    """One direction's metrics for one model on one left-out source."""

    model: str
    queries: str  # "all" or "unseen"
    metrics: dict[str, float]
    chance: dict[str, float]


def measure(images: np.ndarray, words: np.ndarray, captions: list[str],
            keep: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Caption -> picture metrics (and chance's) on the gallery ``images``, for the
    distinct captions (those with ``keep`` true, if given)."""
    from polymodal.pretraining.retrieval import chance_metrics, co_occurrence, retrieval_metrics

    queries, gallery, relevant = co_occurrence(captions, [str(i) for i in range(len(images))])
    first = {c: i for i, c in reversed(list(enumerate(captions)))}
    rows = [first[q] for q in queries]
    chosen = [j for j, r in enumerate(rows) if keep is None or keep[r]]
    if not chosen:
        return {"R@1": float("nan"), "R@5": float("nan"), "R@10": float("nan"),
                "median_rank": float("nan"), "queries": 0.0}, {}
    rel = [relevant[j] for j in chosen]
    m = retrieval_metrics(words[[rows[j] for j in chosen]], images, rel)
    m["queries"] = float(len(chosen))
    return m, chance_metrics(rel, len(gallery))


def left_out(name: str, features: dict[str, Features],
             settings: HeadSettings = HeadSettings()) -> dict[str, object]:
    """Train on every source but ``name``; measure the trained and untrained heads on
    its gallery, all captions and unseen ones. Returns the results, the training
    corpus size and the share of the gallery's captions seen in training."""
    train = concat([features[n] for n in training_names(name)])
    trained = train_heads(train, settings)
    test = features[name].take(gallery_index(len(features[name])))
    seen = set(train.keys)
    unseen = np.array([k not in seen for k in test.keys])
    out: list[Measured] = []
    back: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for model, weights in (("bridge alone", untrained_weights(settings.pooled)),
                           ("LiT heads on the others", trained)):
        images = embed(weights, "image", picture_inputs(test, settings.pooled))
        words = embed(weights, "caption", test.words)
        back[model] = (images, words)
        for queries, keep in (("all", None), ("unseen", unseen)):
            m, chance = measure(images, words, test.captions, keep)
            out.append(Measured(model, queries, m, chance))
    return {"results": out, "train_rows": len(seen), "gallery": len(test),
            "seen_share": float(1 - unseen.mean()), "weights": trained, "back": back,
            "train_keys": seen}


def corpus_size(features: dict[str, Features]) -> tuple[int, int]:
    """The corpus's pictures and distinct caption keys (every source but the tuxpaint
    test split)."""
    parts = [f for n, f in features.items() if n != "tuxpaint"]
    return sum(len(p) for p in parts), len(distinct(concat(parts)))


def shipped_weights(features: dict[str, Features], settings: HeadSettings = HeadSettings()
                    ) -> dict[str, torch.Tensor]:
    """The heads trained on the whole corpus (every source but the tuxpaint test split:
    the benchmark's tuxpaint row stays unseen)."""
    names = [n for n in features if n != "tuxpaint"]
    return train_heads(concat([features[n] for n in names]), settings)



def measure_back(images: np.ndarray, words: np.ndarray, captions: list[str]
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Picture -> caption metrics (and chance's): the gallery is the distinct captions."""
    from polymodal.pretraining.retrieval import chance_metrics, retrieval_metrics

    queries = list(dict.fromkeys(captions))
    first = {c: i for i, c in reversed(list(enumerate(captions)))}
    index = {c: j for j, c in enumerate(queries)}
    relevant = [[index[c]] for c in captions]
    m = retrieval_metrics(images, words[[first[q] for q in queries]], relevant)
    return m, chance_metrics(relevant, len(queries))


#: the settings tried by :func:`choose_settings`
GRID = tuple(HeadSettings(epochs=10, anchor=a, pooled=p, per_name=n)
             for n in PER_NAME for p in (False, True) for a in (0.01, 0.1, 1.0))
#: training-only sources the settings are chosen on (never a measured source)
VALIDATION = ("breeze", "numix")


def unseen_recall(train: Features, held: Features, settings: HeadSettings) -> float:
    """Caption -> picture R@10 on ``held``'s gallery, for its captions whose name
    ``train`` lacks, of the heads trained on ``train`` with ``settings``."""
    w = train_heads(train, settings)
    test = held.take(gallery_index(len(held)))
    seen = set(train.keys)
    keep = np.array([k not in seen for k in test.keys])
    m, _ = measure(embed(w, "image", picture_inputs(test, settings.pooled)),
                   embed(w, "caption", test.words), test.captions, keep)
    return m["R@10"]


def choose_settings(features: dict[str, Features]) -> tuple[HeadSettings, list[str]]:
    """The settings of :data:`GRID` with the best mean unseen caption -> picture R@10
    over :data:`VALIDATION`, each left out of a corpus without the measured sources
    (so no measured source takes part in the choice), and a line per setting."""
    pool = [n for n in features if n not in MEASURED and n != TUNING.name]
    lines, best = [], (-1.0, GRID[0])
    for s in GRID:
        scores = []
        for held in VALIDATION:
            train = concat([features[n] for n in pool if n != held])
            scores.append(unseen_recall(train, features[held], s))
        mean = float(np.mean(scores))
        lines.append(f"pooled features {'read' if s.pooled else 'not read'}, pull "
                     f"{s.anchor}, {s.per_name} picture a name: unseen R@10 "
                     + ", ".join(f"{h} {v:.3f}" for h, v in zip(VALIDATION, scores,
                                                                   strict=True)))
        if mean > best[0]:
            best = (mean, s)
    return best[1], lines
