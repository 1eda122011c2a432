"""tuxpaint: the category of a stamp from its picture and caption, against picture alone
and caption alone, with the offline pretrained towers (frozen, features cached)."""

from __future__ import annotations

import logging
import time

import numpy as np

from benchmarks.report import RESULTS, Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.data.bundled.registry import data_home
from polymodal.predictor import Predictor

SETTINGS = {"image alone": ["image"], "caption alone": ["caption"],
            "image + caption (gated)": ["image", "caption"]}


def run(quick: bool = False, seeds: tuple[int, ...] = (0, 1, 2)) -> Section:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    manifest = Manifest.read(make_dataset("tuxpaint", limit=3 if quick else None))
    if quick:
        seeds = (0,)
    cache = data_home() / "feature-cache"
    test = manifest.split("test")
    section = Section(
        key="tuxpaint-fusion", title="tuxpaint: category from picture and caption",
        command="python -m benchmarks --only tuxpaint-fusion" + (" --quick" if quick
                                                                       else ""),
        columns=["setting", "seeds", "test accuracy (mean ± std)", "macro-F1 (mean)",
                 "train seconds (mean)"])
    for name, columns in SETTINGS.items():
        acc, f1, secs = [], [], []
        for seed in seeds:
            start = time.perf_counter()
            p = Predictor(label="label", modalities=columns, fusion="gated",
                          preset="pretrained", seed=seed, cache_dir=cache,
                          max_epochs=2 if quick else 40, path=RESULTS / "runs" / f"tux{seed}")
            p.fit(manifest, progress=False)
            secs.append(time.perf_counter() - start)
            metrics = p.evaluate(test)
            acc.append(metrics["accuracy"])
            f1.append(metrics["macro_f1"])
        section.rows.append([name, f"{len(seeds)}",
                             f"{np.mean(acc):.3f} ± {np.std(acc):.3f}", f"{np.mean(f1):.3f}",
                             f"{np.mean(secs):.0f}"])
    section.notes = ("16 categories, test split of 150 stamps; frozen EfficientNet-Lite0 "
                     "(images) and MiniLM (captions) with trained projections, gated fusion "
                     "and head (`pretrained` preset); features cached across runs. The "
                     "first run's time includes filling the cache.")
    return section
