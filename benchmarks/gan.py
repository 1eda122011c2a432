"""The conditional GAN on fashion-mnist: how real its pictures are (a classifier trained
on synthetic pictures only, tested on real ones, against one trained on as many real
pictures and against chance) and what synthetic rows do to label efficiency (a
Predictor on 1% and 10% of the labels, with and without synthetic rows from a GAN
trained on those labelled pictures only, 3 seeds); a grid of samples in docs/img/."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from benchmarks.report import DOCS, RESULTS, ResultLog, Section

LIMIT = 300  # fashion-mnist pictures per class and split
TEST = 100  # real test pictures per class scored
SYNTHETIC_PER_CLASS = 30
VAL = 10  # real validation pictures per class (the val split): every fit stops on them
GAN_STEPS = 2000  # the GAN on every training picture (shrunk from 3,000 to fit a CPU hour)
FEW_STEPS = 600  # a GAN on the labelled pictures alone


def _data(quick: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, val, test) rows: val and test are real pictures never trained on."""
    from polymodal.data.bundled import make_dataset

    path = Path(make_dataset("fashion-mnist", limit=20 if quick else LIMIT,
                             show_progress=False))
    t = pd.read_csv(path)
    t["image"] = [str(path.parent / p) for p in t["image"]]
    t = t[["id", "image", "label", "caption", "split"]]
    test = t[t.split == "test"].groupby("label", group_keys=False).head(5 if quick else TEST)
    val = t[t.split == "val"].groupby("label", group_keys=False).head(2 if quick else VAL)
    return (t[t.split == "train"].drop(columns=["split"]), val.drop(columns=["split"]),
            test.drop(columns=["split"]))


def _accuracy(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, seed: int,
              quick: bool) -> float:
    """Test accuracy of a Predictor fitted on ``train``, early-stopped on ``val``."""
    from polymodal.predictor import Predictor

    p = Predictor(label="label", modalities=["image"], preset="fast", fusion="concat",
                  max_epochs=2 if quick else 15, seed=seed, media_cache=None,
                  path=RESULTS / "runs" / "gan" / "predictor")
    p.fit(train.drop(columns=["caption"], errors="ignore"),
          val.drop(columns=["caption"], errors="ignore"), progress=False)
    predicted = p.predict(test.drop(columns=["label", "caption"], errors="ignore"))
    return float(np.mean(predicted.astype(str).to_numpy() ==
                         test["label"].astype(str).to_numpy()))


def _gan(train: pd.DataFrame, seed: int, steps: int):
    from polymodal.generate.gan import ConditionalGAN

    return ConditionalGAN(steps=steps, seed=seed).fit(train.drop(columns=["caption"]))


def _synthetic(gan, name: str, per_class: int, seed: int) -> pd.DataFrame:
    from polymodal.generate.augment import write_synthetic

    manifest = write_synthetic(gan, RESULTS / "runs" / "gan" / name, per_class, seed=seed)
    syn = pd.read_csv(manifest)
    syn["image"] = [str(manifest.parent / p) for p in syn["image"]]
    return syn[["id", "image", "label"]]


def _grid(gan, path: Path, per_class: int = 8) -> None:
    size = gan.size
    grid = Image.new("L", (per_class * (size + 2), len(gan.classes_) * (size + 2)), 255)
    for r, name in enumerate(gan.classes_):
        for c, picture in enumerate(gan.sample(name, per_class, seed=r)):
            grid.paste(picture, (c * (size + 2), r * (size + 2)))
    grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(path)


def run(quick: bool = False) -> Section:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    train, val, test = _data(quick)
    steps, few_steps = (50, 20) if quick else (GAN_STEPS, FEW_STEPS)
    log = ResultLog(RESULTS / ("gan-quick.jsonl" if quick else "gan.jsonl"),
                    ("what", "fraction", "seed"))
    section = Section(
        key="gan", title="Conditional GAN on fashion-mnist: synthetic pictures as "
        "training data", command="python -m benchmarks --only gan" +
        (" --quick" if quick else ""),
        columns=["trained on", "real labelled pictures", "synthetic pictures",
                 "test accuracy (real pictures)", "ratio to the real-only baseline"])
    if ("cas", 1.0, 0) not in log:
        start = time.perf_counter()
        gan = _gan(train, 0, steps)
        gan_s = time.perf_counter() - start
        pictures = RESULTS / "img" if quick else DOCS / "img"  # a smoke run's aside
        pictures.mkdir(parents=True, exist_ok=True)
        _grid(gan, pictures / "gan_fashionmnist_grid.png")
        per_class = len(train) // len(gan.classes_)
        syn = _synthetic(gan, "all", per_class, 0)
        log.add({"what": "cas", "fraction": 1.0, "seed": 0, "gan_s": gan_s,
                 "synthetic": _accuracy(syn, val, test, 0, quick), "n": len(syn),
                 "real": _accuracy(train, val, test, 0, quick), "n_real": len(train)})
    cas = log[("cas", 1.0, 0)]
    section.rows.append(["real pictures (baseline)", f"{cas['n_real']:,}", "0",
                         f"{cas['real']:.3f}", "1.00"])
    section.rows.append(["synthetic pictures only (GAN on every training picture)", "0",
                         f"{cas['n']:,}", f"{cas['synthetic']:.3f}",
                         f"{cas['synthetic'] / cas['real']:.2f}"])
    section.rows.append(["chance", "", "", "0.100", f"{0.1 / cas['real']:.2f}"])
    for fraction in (0.01, 0.1):
        for seed in (0,) if quick else (0, 1, 2):
            if ("label-efficiency", fraction, seed) in log:
                continue
            few = train.groupby("label", group_keys=False).sample(
                frac=fraction, random_state=seed) if not quick else \
                train.groupby("label", group_keys=False).head(2)
            gan = _gan(few, seed, few_steps)
            syn = _synthetic(gan, f"f{fraction}-s{seed}", SYNTHETIC_PER_CLASS, seed)
            log.add({"what": "label-efficiency", "fraction": fraction, "seed": seed,
                     "n": len(few), "n_syn": len(syn),
                     "without": _accuracy(few, val, test, seed, quick),
                     "with": _accuracy(pd.concat([few, syn]), val, test, seed, quick)})
        records = [r for k, r in log.records.items() if k[0] == "label-efficiency"
                   and k[1] == fraction]
        if not records:
            continue
        without = np.array([r["without"] for r in records])
        with_syn = np.array([r["with"] for r in records])
        section.rows.append([f"{fraction:.0%} of the labels", f"{records[0]['n']:,}", "0",
                             f"{without.mean():.3f} ± {without.std():.3f}", "1.00"])
        section.rows.append([f"{fraction:.0%} of the labels + synthetic rows",
                             f"{records[0]['n']:,}", f"{records[0]['n_syn']:,}",
                             f"{with_syn.mean():.3f} ± {with_syn.std():.3f}",
                             f"{with_syn.mean() / without.mean():.2f}"])
    section.notes = (
        f"fashion-mnist (Debian's dataset-fashion-mnist; {20 if quick else LIMIT} pictures "
        f"per class and split made), scored on {len(test) // 10} real test pictures per "
        "class. The classifier is "
        "a Predictor (preset fast: a small CNN on the picture, 15 epochs at most), "
        f"early-stopped on the same {VAL} real val-split pictures per class in every arm "
        "(never a test picture). The GAN: DCGAN "
        "generator, spectrally normalised projection discriminator, hinge loss, Adam at "
        "1e-4 (generator) / 4e-4 (discriminator), "
        f"{steps} steps on all training pictures (its fit took {cas['gan_s']:.0f} s); "
        f"for the label-efficiency rows a GAN of {few_steps} steps is trained on the "
        f"labelled pictures alone (no label it was not given) and adds "
        f"{SYNTHETIC_PER_CLASS} synthetic pictures per class; mean ± sd over "
        f"{'1 seed' if quick else '3 seeds'}. Samples: "
        "![GAN samples, one class a row](img/gan_fashionmnist_grid.png)")
    return section
