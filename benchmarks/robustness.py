"""Robustness as MultiBench reports it: accuracy against noise on each modality and
with each modality removed, for every fusion, trained with and without modality
dropout; relative robustness (area under the curve) and effective robustness (the gap
to late fusion)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.fusion import COMPARED
from benchmarks.report import DOCS, RESULTS, PeakMemory, ResultLog, Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.predictor import Predictor

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
COLUMNS = ("audio", "image", "record")


def _area(accuracies: list[float]) -> float:
    return float(np.trapezoid(accuracies, LEVELS))


def run(quick: bool = False, epochs: int = 10, drop: float = 0.3,
        seeds: tuple[int, ...] = (0, 1, 2),
        results: Path = RESULTS / "robustness.jsonl",
        plot: Path = DOCS / "img" / "robustness.png", train: bool = True) -> Section:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    manifest = Manifest.read(make_dataset("av-digits", limit=20 if quick else None))
    if quick:
        epochs, seeds, results = 1, (0,), results.with_name("robustness-quick.jsonl")
        plot = results.parent / "robustness-quick.png"  # not into the docs
    log = ResultLog(results, ("fusion", "drop_modality", "epochs", "seed"))
    test = manifest.split("test")
    for seed in seeds:
        for fusion in COMPARED:
            for p_drop in (0.0, drop):
                if (fusion, p_drop, epochs, seed) in log or not train:
                    continue
                start = time.perf_counter()
                p = Predictor(label="label", fusion=fusion, preset="fast", max_epochs=epochs,
                              drop_modality=p_drop, seed=seed,
                              path=RESULTS / "runs" / f"robust-{seed}")
                with PeakMemory() as memory:
                    p.fit(manifest, progress=False)
                seconds = time.perf_counter() - start
                log.add({"fusion": fusion, "drop_modality": p_drop, "epochs": epochs,
                         "seed": seed, "train_seconds": seconds,
                         "peak_rss_mb": memory.peak_mb, "rss_growth_mb": memory.growth_mb,
                         "parameters": sum(x.numel() for x in p.model_.parameters()),
                         "curves": {c: [p.evaluate(test, noise={c: lv})["accuracy"]
                                        for lv in LEVELS] for c in COLUMNS},
                         "removed": {c: p.evaluate(test, drop=[c])["accuracy"]
                                     for c in COLUMNS}})
    done = _mean_over_seeds(log.records, epochs)
    section = Section(
        key="robustness", title="av-digits robustness: noise on each modality, each removed",
        command="python -m benchmarks --only robustness" + (" --quick" if quick else ""),
        columns=["fusion", "modality dropout", "seeds", "clean", "AUC image noise",
                 "AUC audio noise", "AUC record noise", "relative robustness (mean AUC)",
                 "effective robustness (vs late)", "without image", "without audio",
                 "without record", "train s", "peak RSS MB", "parameters"])
    late = {d: np.mean([_area(done[("late", d)]["curves"][c]) for c in COLUMNS])
            for d in (0.0, drop) if ("late", d) in done}
    for (fusion, p_drop), r in sorted(done.items()):
        aucs = [_area(r["curves"][c]) for c in ("image", "audio", "record")]
        mean_auc = float(np.mean(aucs))
        removed = [f"{r['removed'][c]:.3f} ± {r['removed_std'][c]:.3f}"
                   for c in ("image", "audio", "record")]
        section.rows.append([fusion, f"{p_drop}", f"{r['seeds']}",
                             f"{r['curves']['image'][0]:.3f} ± {r['clean_std']:.3f}",
                             *[f"{a:.3f}" for a in aucs], f"{mean_auc:.3f}",
                             f"{mean_auc - late[p_drop]:+.3f}" if p_drop in late else "",
                             *removed, f"{r['train_seconds']:.0f}", f"{r['peak_rss_mb']:.0f}",
                             f"{r['parameters']:,}"])
    if done:
        _plot(done, drop, plot)
    section.notes = (f"`fast` preset, {epochs} epochs, seeds {list(seeds)} (mean ± std), "
                     f"test split. Noise levels {LEVELS} (see `polymodal.data.noise.noisy`); "
                     "AUC is the area under mean accuracy against noise level; effective "
                     "robustness is the mean AUC minus late fusion's with the same dropout. "
                     "Train seconds and peak resident memory are per run (mean; the memory "
                     "is sampled during `fit`, whole process). Curves: ![robustness](img/"
                     f"{plot.name})")
    return section


def _mean_over_seeds(records: dict, epochs: int) -> dict[tuple[str, float], dict]:
    """(fusion, dropout) -> curves and removed accuracies averaged over the seeds."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for (fusion, p_drop, e, _seed), r in records.items():
        if e == epochs:
            groups.setdefault((fusion, p_drop), []).append(r)
    out = {}
    for key, rs in groups.items():
        if key[0] not in COMPARED:
            continue
        out[key] = {
            "seeds": len(rs),
            "curves": {c: np.mean([r["curves"][c] for r in rs], axis=0).tolist()
                       for c in COLUMNS},
            "clean_std": float(np.std([r["curves"]["image"][0] for r in rs])),
            "removed": {c: float(np.mean([r["removed"][c] for r in rs])) for c in COLUMNS},
            "removed_std": {c: float(np.std([r["removed"][c] for r in rs])) for c in COLUMNS},
            "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
            "peak_rss_mb": float(np.mean([r["peak_rss_mb"] for r in rs])),
            "parameters": rs[0]["parameters"]}
    return out


def _plot(done: dict, drop: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, column in zip(axes, ("image", "audio", "record"), strict=True):
        for (fusion, p_drop), r in sorted(done.items()):
            ax.plot(LEVELS, r["curves"][column], marker="o",
                    linestyle="-" if p_drop else "--",
                    label=f"{fusion}{' + dropout' if p_drop else ''}")
        ax.set_title(f"noise on {column}")
        ax.set_xlabel("noise level")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
