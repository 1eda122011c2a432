"""Robustness as MultiBench reports it: accuracy against noise on each modality and
with each modality removed, for every fusion, trained with and without modality
dropout; relative robustness (area under the curve) and effective robustness (the gap
to late fusion)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from polymodal.bench.report import ResultLog, Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.fusion import FUSIONS
from polymodal.predictor import Predictor

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
COLUMNS = ("audio", "image", "record")


def _area(accuracies: list[float]) -> float:
    return float(np.trapezoid(accuracies, LEVELS))


def run(quick: bool = False, epochs: int = 10, drop: float = 0.3,
        results: Path = Path("bench-results/robustness.jsonl"),
        plot: Path = Path("docs/img/robustness.png"), train: bool = True) -> Section:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    manifest = Manifest.read(make_dataset("av-digits", limit=20 if quick else None))
    if quick:
        epochs, results = 1, results.with_name("robustness-quick.jsonl")
        plot = results.parent / "robustness-quick.png"  # not into the docs
    log = ResultLog(results, ("fusion", "drop_modality", "epochs"))
    done = log.records
    test = manifest.split("test")
    for fusion in sorted(FUSIONS):
        for p_drop in (0.0, drop):
            if (fusion, p_drop, epochs) in done or not train:
                continue
            p = Predictor(label="label", fusion=fusion, preset="fast", max_epochs=epochs,
                          drop_modality=p_drop, seed=0, path="bench-results/runs/robust")
            p.fit(manifest, progress=False)
            r = {"fusion": fusion, "drop_modality": p_drop, "epochs": epochs,
                 "curves": {c: [p.evaluate(test, noise={c: lv})["accuracy"] for lv in LEVELS]
                            for c in COLUMNS},
                 "removed": {c: p.evaluate(test, drop=[c])["accuracy"] for c in COLUMNS}}
            log.add(r)
    section = Section(
        key="robustness", title="av-digits robustness: noise on each modality, each removed",
        command="python -m polymodal.bench --only robustness" + (" --quick" if quick else ""),
        columns=["fusion", "modality dropout", "clean", "AUC image noise",
                 "AUC audio noise", "AUC record noise", "relative robustness (mean AUC)",
                 "effective robustness (vs late)", "without image", "without audio",
                 "without record"])
    late = {d: np.mean([_area(done[("late", d, epochs)]["curves"][c]) for c in COLUMNS])
            for d in (0.0, drop) if ("late", d, epochs) in done}
    for (fusion, p_drop, _e), r in sorted(done.items()):
        if _e != epochs:
            continue
        aucs = [_area(r["curves"][c]) for c in ("image", "audio", "record")]
        mean_auc = float(np.mean(aucs))
        section.rows.append([fusion, f"{p_drop}", f"{r['curves']['image'][0]:.3f}",
                             *[f"{a:.3f}" for a in aucs], f"{mean_auc:.3f}",
                             f"{mean_auc - late[p_drop]:+.3f}" if p_drop in late else "",
                             *[f"{r['removed'][c]:.3f}" for c in ("image", "audio", "record")]])
    if done:
        _plot(done, epochs, drop, plot)
    section.notes = (f"`fast` preset, {epochs} epochs, seed 0, test split. Noise levels "
                     f"{LEVELS} (see `polymodal.data.noise.noisy`); AUC is the area under "
                     "accuracy against noise level. Curves: ![robustness](img/"
                     f"{plot.name})")
    return section


def _plot(done: dict, epochs: int, drop: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, column in zip(axes, ("image", "audio", "record"), strict=True):
        for (fusion, p_drop, e), r in sorted(done.items()):
            if e == epochs:
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
