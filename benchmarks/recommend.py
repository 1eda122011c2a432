"""Multimodal recommendation on tuxpaint: simulated users whose tastes follow the stamp
categories, leave-one-out HitRate@10 and NDCG@10 for fused (picture + caption) item
embeddings, each modality alone, two towers trained on the likes, and popularity."""

from __future__ import annotations

import logging

import numpy as np

from benchmarks.library import tuxpaint_model
from benchmarks.report import Section
from polymodal.apps import Recommender, simulate_users
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset


def run(quick: bool = False, seeds: tuple[int, ...] = (0, 1, 2)) -> Section:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    model = tuxpaint_model(quick)
    items = Manifest.read(make_dataset("tuxpaint", limit=3 if quick else None))
    if quick:
        seeds = (0,)
    settings = [("popularity", None, "popularity"),
                ("picture embedding only", ["image"], "content"),
                ("caption embedding only", ["caption"], "content"),
                ("picture + caption (fused)", None, "content"),
                ("picture + caption, two towers on the likes", None, "two-tower")]
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _c, _m in settings}
    from polymodal.pretraining import Pretrainer

    pre = Pretrainer.load(model)
    embedded = pre.embed(items, pre.columns_)  # once: every setting reuses them
    for seed in seeds:
        # train on the likes of some users, evaluate on others
        users = simulate_users(items, n_users=40 if quick else 400, seed=seed)
        names = users["user"].unique()
        held = set(np.random.default_rng(seed).choice(names, len(names) // 4, replace=False))
        train, test = users[~users.user.isin(held)], users[users.user.isin(held)]
        for name, columns, method in settings:
            rec = Recommender(model, columns=columns, seed=seed).fit(
                items, interactions=train if method in ("two-tower", "popularity") else None,
                item_embeddings=embedded)
            results[name].append(rec.evaluate(test, k=10, method=method))
    section = Section(
        key="recommend-tuxpaint", title="Multimodal recommendation: tuxpaint",
        command="python -m benchmarks --only recommend-tuxpaint"
                + (" --quick" if quick else ""),
        columns=["items embedded by", "seeds", "HitRate@10", "NDCG@10"])
    for name, rs in results.items():
        hr = [r["hit_rate@10"] for r in rs]
        nd = [r["ndcg@10"] for r in rs]
        section.rows.append([name, f"{len(rs)}", f"{np.mean(hr):.3f} ± {np.std(hr):.3f}",
                             f"{np.mean(nd):.3f} ± {np.std(nd):.3f}"])
    section.notes = (
        f"{len(items)} tuxpaint stamps embedded by `builtin:lit-tuxpaint` (locked "
        "EfficientNet-Lite0 and MiniLM with trained heads). Simulated users (400 per seed) "
        "like one or two categories (85% of their 5 to 12 likes). Three quarters of the "
        "users train the two towers and the popularity counts; the other quarter is "
        "evaluated leave-one-out: the last like is held out and ranked against every "
        "stamp the user has not liked.")
    return section
