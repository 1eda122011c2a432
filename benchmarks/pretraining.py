"""Pretraining benchmarks: tuxpaint picture <-> caption retrieval against chance and
untrained projections; label efficiency on av-digits and fashion-mnist (1%, 10%, 100%
of the labels, from a pretrained checkpoint and from scratch) with fashion-mnist
zero-shot; pretraining throughput against a plain PyTorch loop and the batch / memory
trade-off. Every result is kept as it comes, so an interrupted run resumes."""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from benchmarks.report import RESULTS, PeakMemory, ResultLog, Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.data.bundled.registry import data_home
from polymodal.predictor import Predictor
from polymodal.pretraining import Pretrainer, chance_metrics, co_occurrence

FRACTIONS = (0.01, 0.1, 1.0)
INITS = ("scratch", "pretrained, fine-tuned", "pretrained, frozen (probe)")
#: dataset -> (Pretrainer settings, Predictor settings, pretraining epochs)
SETUPS: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "av-digits": ({"preset": "fast"}, {"fusion": "concat"}, 30),
    "fashion-mnist": ({"preset": "fast", "encoders": {"text": "minilm"}, "batch_size": 256,
                       "modalities": ["image", "caption"]},
                      {"fusion": "concat", "modalities": ["image"]}, 2),
}


def _quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else ""


# -- retrieval ----------------------------------------------------------------------
def retrieval(quick: bool = False, seeds: tuple[int, ...] = (0, 1, 2), train: bool = True,
              epochs: int = 40) -> Section:
    """tuxpaint: locked EfficientNet-Lite0 and MiniLM towers, trained projections."""
    _quiet()
    manifest = Manifest.read(make_dataset("tuxpaint", limit=3 if quick else None))
    if quick:
        seeds, epochs = (0,), 2
    log = ResultLog(RESULTS / ("retrieval-quick.jsonl" if quick else "retrieval.jsonl"),
                    ("setting", "seed", "epochs"))
    test = manifest.split("test")
    for seed in seeds:
        for setting, n_epochs in (("untrained projections", 0), ("pretrained", epochs)):
            if (setting, seed, epochs) in log or not train:
                continue
            pre = Pretrainer(modalities=["image", "caption"], preset="pretrained", seed=seed,
                             max_epochs=n_epochs, cache_dir=data_home() / "feature-cache",
                             path=RESULTS / "runs" / f"retrieval-{seed}")
            pre.fit(manifest, progress=False)
            table = pre.evaluate_retrieval(test).set_index("direction")
            log.add({"setting": setting, "seed": seed, "epochs": epochs,
                     "seconds": pre.fit_seconds_, "metrics": table.to_dict(orient="index")})
    section = Section(
        key="pretrain-retrieval", title="tuxpaint: picture <-> caption retrieval",
        command="python -m benchmarks --only pretrain-retrieval"
                + (" --quick" if quick else ""),
        columns=["direction", "setting", "seeds", "R@1", "R@5", "R@10", "median rank", "mAP"])
    for direction, q, g in (("caption -> image", "caption", "image"),
                            ("image -> caption", "image", "caption")):
        _q, gallery, relevant = co_occurrence(test.table[q].astype(str).tolist(),
                                              test.table[g].astype(str).tolist())
        chance = chance_metrics(relevant, len(gallery))
        section.rows.append([direction, "chance", "", *[f"{chance[k]:.3f}" for k in
                                                          ("R@1", "R@5", "R@10")],
                             f"{chance['median_rank']:.1f}", ""])
        for setting in ("untrained projections", "pretrained"):
            rs = [log[(setting, s, epochs)]["metrics"][direction] for s in seeds
                  if (setting, s, epochs) in log]
            if rs:
                section.rows.append([direction, setting, f"{len(rs)}",
                                     *[_mean_std([r[k] for r in rs]) for k in
                                       ("R@1", "R@5", "R@10")],
                                     f"{np.mean([r['median_rank'] for r in rs]):.1f}",
                                     _mean_std([r["mAP"] for r in rs])])
    section.notes = (
        f"Test split ({len(test)} rows), every picture and caption counted once; a caption "
        "shared by two stamps has both as correct answers. Towers: EfficientNet-Lite0 "
        "(ImageNet) and all-MiniLM-L6-v2, both locked, features cached; trained: the two "
        f"MLP projection heads and the temperature, {epochs} epochs on the train split "
        "(early stopping on val), symmetric InfoNCE. 'Untrained projections' are the same "
        "towers with randomly initialised heads. Mean ± std over seeds.")
    return section


# -- label efficiency -----------------------------------------------------------------
def _epochs(rows: int, batch: int, quick: bool) -> int:
    """Enough epochs for about 400 optimiser steps, between 1 and 60."""
    return 1 if quick else int(np.clip(math.ceil(400 / max(1, math.ceil(rows / batch))), 1, 60))


def _pretrained(dataset: str, manifest: Manifest, seed: int, quick: bool
                ) -> tuple[Path, dict[str, Any]]:
    pre_settings, _p, epochs = SETUPS[dataset]
    folder = RESULTS / "pretrained" / f"{dataset}{'-quick' if quick else ''}-{seed}"
    log = ResultLog(RESULTS / ("pretrain-quick.jsonl" if quick else "pretrain.jsonl"),
                    ("dataset", "seed"))
    if (dataset, seed) in log and (folder / "config.yaml").exists():
        return folder, log[(dataset, seed)]
    pre = Pretrainer(**pre_settings, seed=seed, max_epochs=1 if quick else epochs,
                     cache_dir=data_home() / "feature-cache",
                     path=RESULTS / "runs" / f"pretrain-{dataset}-{seed}")
    with PeakMemory() as memory:
        pre.fit(manifest.split("train"), manifest.split("val"), progress=False)
    pre.save(folder)
    record: dict[str, Any] = {"dataset": dataset, "seed": seed, "seconds": pre.fit_seconds_,
                              "pairs_seen": pre.pairs_seen_, "peak_rss_mb": memory.peak_mb}
    if dataset == "fashion-mnist":
        record["zero_shot"] = pre.evaluate_zero_shot(manifest.split("test"), "image",
                                                     "label")["accuracy"]
    log.add(record)
    return folder, record


def label_efficiency(quick: bool = False, seeds: tuple[int, ...] = (0, 1, 2),
                     train: bool = True) -> Section:
    _quiet()
    if quick:
        seeds = (0,)
    log = ResultLog(RESULTS / ("label-efficiency-quick.jsonl" if quick else
                               "label-efficiency.jsonl"),
                    ("dataset", "fraction", "init", "seed"))
    pre_log: dict[tuple[str, int], dict[str, Any]] = {}
    for dataset in SETUPS:
        manifest = Manifest.read(make_dataset(dataset, limit=3 if quick else None),
                                 label="label")
        _pre, predictor_settings, _e = SETUPS[dataset]
        test = manifest.split("test")
        for seed in seeds:
            if not train and not all((dataset, f, i, seed) in log for f in FRACTIONS
                                     for i in INITS):
                continue
            if not train:  # report only: never pretrain again
                pre_log[(dataset, seed)] = ResultLog(
                    RESULTS / ("pretrain-quick.jsonl" if quick else "pretrain.jsonl"),
                    ("dataset", "seed"))[(dataset, seed)]
                continue
            checkpoint, pre_log[(dataset, seed)] = _pretrained(dataset, manifest, seed, quick)
            for fraction in FRACTIONS:
                tr = manifest.split("train").stratified_subset("label", fraction, seed)
                va = manifest.split("val").stratified_subset("label", fraction, seed)
                for init in INITS:
                    if (dataset, fraction, init, seed) in log:
                        continue
                    start = time.perf_counter()
                    p = Predictor(label="label", preset="fast", seed=seed,
                                  max_epochs=_epochs(len(tr), 64, quick),
                                  freeze_encoders=init.endswith("(probe)"),
                                  path=RESULTS / "runs" / f"le-{dataset}-{seed}",
                                  **predictor_settings)
                    p.fit(tr, va, progress=False,
                          init_from=None if init == "scratch" else checkpoint)
                    log.add({"dataset": dataset, "fraction": fraction, "init": init,
                             "seed": seed, "labels": len(tr),
                             "accuracy": p.evaluate(test)["accuracy"],
                             "seconds": time.perf_counter() - start})
    section = Section(
        key="label-efficiency", title="Label efficiency: fine-tuning from pretraining",
        command="python -m benchmarks --only label-efficiency"
                + (" --quick" if quick else ""),
        columns=["dataset", "labels used", "init", "seeds", "test accuracy (mean ± std)",
                 "gain over scratch"])
    for dataset in SETUPS:
        for fraction in FRACTIONS:
            scratch = [log[k]["accuracy"] for s in seeds
                       if (k := (dataset, fraction, "scratch", s)) in log]
            for init in INITS:
                rs = [log[k] for s in seeds if (k := (dataset, fraction, init, s)) in log]
                if not rs:
                    continue
                acc = [r["accuracy"] for r in rs]
                gain = (f"{np.mean(acc) - np.mean(scratch):+.3f}"
                        if scratch and init != "scratch" else "")
                section.rows.append([dataset, f"{fraction:.0%} ({rs[0]['labels']:,} rows)",
                                     init, f"{len(rs)}", _mean_std(acc), gain])
    zero = [r["zero_shot"] for (d, _s), r in pre_log.items() if d == "fashion-mnist"]
    pre_rows = [f"{d} seed {s}: {r['seconds']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
                for (d, s), r in sorted(pre_log.items())]
    section.notes = (
        "Pretraining: symmetric InfoNCE on the train split's rows without their labels "
        "(av-digits: picture, spoken digit and record, every pair, encoders from scratch; "
        "fashion-mnist: picture and caption, a CNN from scratch against locked MiniLM). "
        "Fine-tuning: the `fast` preset's model (concat fusion; fashion-mnist from the "
        "picture only, since its captions name the class) on a stratified share of the "
        "train labels, tuned on the same share of the val split, tested on the full test "
        "split; 'frozen (probe)' trains only projection, fusion and head on the pretrained "
        "encoders. About 400 optimiser steps per run (1 to 60 epochs; early stopping on "
        "the val share). Gain: mean accuracy minus scratch's at the same share. "
        + (f"fashion-mnist zero-shot from the ten class names (prompt ensemble of "
           f"'{{}}', 'a photo of a {{}}.', 'a picture of a {{}}.'), no labels: "
           f"{_mean_std(zero)} over {len(zero)} seeds (chance 0.100). " if zero else "")
        + ("Pretraining runs: " + "; ".join(pre_rows) + "." if pre_rows else ""))
    return section


# -- throughput -----------------------------------------------------------------------
class _EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def _plain_loop_seconds(pre: Pretrainer, manifest: Manifest, batch: int,
                        epochs: int = 2) -> float:
    """The faster of ``epochs`` epochs of a hand-written loop over the same model, loss
    and batches."""
    from polymodal.objectives import content_hash

    model, loss = pre.model_, pre.loss_
    model.cached = set(pre._cache_loaders)
    model.train()
    optimizer = torch.optim.AdamW([*model.parameters(), loss.log_scale], lr=1e-3)
    loader = pre._loader(manifest, shuffle=True, drop_last=True)
    best = float("inf")
    for _ in range(epochs):
        start = time.perf_counter()
        for b in loader:
            emb, present = model(b)
            value, _ = loss(emb, present,
                            {c: content_hash(b.inputs[c]) for c in model.columns})
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        best = min(best, time.perf_counter() - start)
    model.cached = set()
    return best


def _throughput_rows(quick: bool) -> Manifest:
    manifest = Manifest.read(make_dataset("fashion-mnist", limit=3 if quick else None))
    rows = manifest.split("train")
    return rows.subset(list(range(min(len(rows), 256 if quick else 16384))))


def _throughput_one(quick: bool, batch: int, queue: int) -> tuple[float, float, float]:
    """(Pretrainer pairs/s, plain-loop pairs/s, peak RSS MB) of one setting."""
    _quiet()
    rows = _throughput_rows(quick)
    timer = _EpochTimer()
    pre = Pretrainer(modalities=["image", "caption"], preset="fast", batch_size=batch,
                     encoders={"text": "minilm"}, queue_size=queue, max_epochs=2,
                     cache_dir=data_home() / "feature-cache", patience=100,
                     path=RESULTS / "runs" / f"throughput-{batch}-{queue}")
    with PeakMemory() as memory:
        pre.fit(rows, rows.subset([0, 1]), progress=False, callbacks=[timer])
    pairs = len(rows) // batch * batch
    ours = pairs / min(timer.seconds)  # the faster of 2 epochs
    return ours, pairs / _plain_loop_seconds(pre, rows, batch), memory.peak_mb


def throughput(quick: bool = False) -> Section:
    """fashion-mnist pairs per second for a range of batch sizes, and with a queue."""
    rows = _throughput_rows(quick)
    settings = [(4, 0), (8, 0), (4, 4)] if quick else [(32, 0), (128, 0), (512, 0), (32, 480)]
    section = Section(
        key="pretrain-throughput", title="Pretraining throughput and the batch / memory "
        "trade-off", command="python -m benchmarks --only pretrain-throughput"
        + (" --quick" if quick else ""),
        columns=["batch", "queue", "negatives per pair", "pairs/s (Pretrainer)",
                 "pairs/s (plain loop)", "ratio", "peak RSS (MB)"])
    for batch, queue in settings:
        if batch > len(rows) // 2:
            continue
        # each setting in a fresh process, so that its peak memory is its own
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            ours, plain, peak = pool.apply(_throughput_one, (quick, batch, queue))
        section.rows.append([f"{batch}", f"{queue}", f"{batch - 1 + queue}", f"{ours:,.0f}",
                             f"{plain:,.0f}", f"{ours / plain:.2f}", f"{peak:.0f}"])
    section.notes = (
        f"{len(rows):,} fashion-mnist picture-caption pairs; the picture CNN (`fast` "
        "preset, 32 px) trains from scratch against locked MiniLM caption features read "
        "from the cache. Pairs/s: the faster of two epochs of `Pretrainer.fit` "
        "(Lightning, validation excluded) against the faster of two epochs of a "
        "hand-written PyTorch loop over the same model, loss and batches (ratio above 1: "
        "the Pretrainer is faster). The queue row keeps the last 480 embeddings of each "
        "side as extra negatives: as many negatives as batch 512 at the activation "
        "memory of batch 32 (its entries are a few steps stale, MoCo's trade). Peak RSS "
        "is the whole process's, sampled during fit, each setting in a process of its "
        "own.")
    return section
