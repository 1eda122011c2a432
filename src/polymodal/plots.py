"""Plots written to PNG files (matplotlib, no display): learning curves, confusion
matrix, per-modality contribution."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def read_metrics(metrics_csv: str | Path) -> pd.DataFrame | None:
    """A run's Lightning CSV log as one table: the parts an interrupted run left
    before each resume (``metrics.before-resume-K.csv``) and then ``metrics_csv``. Where
    a resumed part logs an epoch again (the one the interruption cut short), its rows
    replace the earlier part's from that epoch on. None if there is no log."""
    metrics_csv = Path(metrics_csv)
    parts = sorted(metrics_csv.parent.glob("metrics.before-resume-*.csv"),
                   key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    frames = [pd.read_csv(p) for p in [*parts, metrics_csv] if p.is_file()]
    if not frames:
        return None
    log = frames[0]
    for later in frames[1:]:
        if "epoch" in log and "epoch" in later and later["epoch"].notna().any():
            log = log[~(log["epoch"] >= later["epoch"].min())]
        log = pd.concat([log, later], ignore_index=True)
    return log


def learning_curves(metrics_csv: str | Path | pd.DataFrame, out: str | Path, *,
                    chance: float | None = None, title: str = "learning curves"
                    ) -> Path | None:
    """Loss (and accuracy) per epoch, train and validation, from Lightning's CSV log
    (every part of a resumed run's, see :func:`read_metrics`) or a table read from one;
    ``chance`` draws the accuracy of guessing the most frequent class."""
    out = Path(out)
    log = metrics_csv if isinstance(metrics_csv, pd.DataFrame) else read_metrics(metrics_csv)
    if log is None or "epoch" not in log:
        return None
    per_epoch = log.groupby("epoch").mean(numeric_only=True)
    kinds = [k for k in ("loss", "accuracy") if f"train_{k}" in per_epoch
             or f"val_{k}" in per_epoch]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for stage in ("train", "val"):
            col = f"{stage}_{kind}"
            if col in per_epoch and per_epoch[col].notna().any():
                series = per_epoch[col].dropna()
                ax.plot(series.index, series.values, marker="o", label=stage)
        if kind == "accuracy" and chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", label=f"chance ({chance:.2f})")
        ax.set_title(f"{kind} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(kind)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str],
                     out: str | Path, title: str = "confusion matrix") -> Path:
    """Row-normalised confusion matrix with counts."""
    from sklearn.metrics import confusion_matrix as cm

    counts = cm(y_true, y_pred, labels=list(range(len(classes))))
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = float(np.trace(counts) / max(counts.sum(), 1))
    ax.set_title(f"{title} (accuracy {accuracy:.3f}, {int(counts.sum()):,} rows)")
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def modality_contribution(report: pd.DataFrame, out: str | Path, *,
                          chance: float | None = None) -> Path:
    """A bar per setting of a modality report (all, without X, X alone); ``chance``
    draws the score of guessing."""
    metric = next(c for c in report.columns if c != "setting")
    rows = report[~report["setting"].str.startswith("gate weight")]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(rows) + 1.6))
    ax.barh(rows["setting"], rows[metric], color="tab:blue")
    if chance is not None:
        ax.axvline(chance, color="grey", linestyle="--", label=f"chance ({chance:.2f})")
        ax.legend(loc="lower right")
    ax.invert_yaxis()
    ax.set_title(f"what each modality contributes ({metric})")
    ax.set_xlabel(metric)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)
