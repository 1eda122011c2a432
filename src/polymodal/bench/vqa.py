"""Visual question answering on sort-of-clevr: a Relation Network over the picture's
CNN grid conditioned on the question (``fusion="relation"``) against the same CNN and
question encoder fused by an MLP (``concat``: the paper's CNN+MLP), relational and
non-relational questions reported apart, next to Santoro et al. 2017."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from polymodal.bench.report import ResultLog, Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.predictor import Predictor

RESULTS = Path("bench-results")
#: the VQA model: a 64 px CNN (8 x 8 = 64 objects at the last layer is too many pairs on a
#: CPU; the 4 x 4 grid of a 32 px input keeps 256 pairs) and a BiLSTM over the words
ENCODERS = {"image": ("cnn", {"image_size": 32, "dim": 64}),
            "text": ("word-bilstm", {"dim": 64})}
SETTINGS = {"CNN + RN (relation)": "relation", "CNN + MLP (concat)": "concat"}
PAPER = {"CNN + RN (relation)": "about 94%", "CNN + MLP (concat)": "about 63%"}


def train_vqa(manifest: Manifest, fusion: str, seed: int = 0, epochs: int = 12,
              path: str | Path = RESULTS / "runs" / "vqa", rows: int | None = None,
              progress: bool = False, tune_on_train: bool = False,
              resume: bool = False) -> Predictor:
    """A VQA Predictor (question + picture -> answer class) on ``manifest``'s train
    split (its first ``rows`` questions if given), tuned on val (or on train, for data
    too small for val to hold only answers seen in training). ``resume`` continues an
    interrupted run in ``path`` from its last checkpoint."""
    train = manifest.split("train")
    if rows is not None:
        train = train.subset(list(range(min(rows, len(train)))))
    p = Predictor(label="answer", modalities=["image", "question"], fusion=fusion,
                  encoders=ENCODERS, preset="fast", seed=seed, max_epochs=epochs,
                  batch_size=128, lr=1e-3, path=path)
    return p.fit(train, train if tune_on_train else manifest.split("val"), progress=progress,
                 resume=resume)


def run(quick: bool = False, seeds: tuple[int, ...] = (0,), train: bool = True,
        epochs: int = 10, rows: int | None = 15_000) -> Section:
    """Both models on the first ``rows`` training questions for ``epochs`` epochs: the
    default is what two CPU cores train in about 45 minutes (a Relation Network step
    over 256 object pairs costs about 15 times a CNN+MLP step there); the paper's scale,
    every question for far longer, is for a GPU (``rows=None``)."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    manifest = Manifest.read(make_dataset("sort-of-clevr", limit=3 if quick else None),
                             label="answer")
    if quick:
        epochs, rows = 1, None
    log = ResultLog(RESULTS / ("vqa-quick.jsonl" if quick else "vqa.jsonl"),
                    ("setting", "seed", "epochs", "rows"))
    test = manifest.split("test")
    relational = test.table["relational"].astype(str).str.lower().eq("true").to_numpy()
    for seed in seeds:
        for name, fusion in SETTINGS.items():
            if (name, seed, epochs, rows) in log or not train:
                continue
            start = time.perf_counter()
            # one folder per setting, so that a run killed mid-way (the Relation Network
            # trains for hours on a CPU) resumes from its last epoch on the next call
            run_dir = RESULTS / "runs" / (f"vqa-{fusion}-{seed}-{rows or 'all'}x{epochs}"
                                          + ("-quick" if quick else ""))
            p = train_vqa(manifest, fusion, seed, epochs, run_dir, rows,
                          tune_on_train=quick,
                          resume=(run_dir / "checkpoints" / "last.ckpt").exists())
            pred = p.predict(test).to_numpy()
            right = pred == test.table["answer"].astype(str).to_numpy()
            log.add({"setting": name, "seed": seed, "epochs": epochs, "rows": rows,
                     "relational": float(right[relational].mean()),
                     "non_relational": float(right[~relational].mean()),
                     "seconds": time.perf_counter() - start})
    section = Section(
        key="vqa-sort-of-clevr", title="Visual question answering: sort-of-clevr",
        command="python -m polymodal.bench --only vqa-sort-of-clevr"
                + (" --quick" if quick else ""),
        columns=["model", "seeds", "relational accuracy", "non-relational accuracy",
                 "paper, relational", "train s"])
    for name in SETTINGS:
        rs = [log[(name, s, epochs, rows)] for s in seeds if (name, s, epochs, rows) in log]
        if rs:
            section.rows.append([name, f"{len(rs)}",
                                 f"{np.mean([r['relational'] for r in rs]):.3f}",
                                 f"{np.mean([r['non_relational'] for r in rs]):.3f}",
                                 PAPER[name], f"{np.mean([r['seconds'] for r in rs]):.0f}"])
    section.notes = (
        f"Test split ({len(test):,} questions, {relational.mean():.0%} relational). Both "
        "models share the encoders (a CNN on the 32 px picture, a BiLSTM over the "
        "question's words) and differ only in the fusion: a Relation Network over the "
        "CNN's 4 x 4 grid of objects, conditioned on the question, against an MLP over "
        f"the concatenated vectors. Trained {epochs} epochs on "
        + (f"the first {rows:,} training questions" if rows else "every training question")
        + " on this CPU; the paper's figures (Santoro et al. 2017, sort-of-CLEVR) come "
        "from far longer GPU training on 75 px pictures.")
    return section
