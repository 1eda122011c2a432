"""Audio-visual recognition: speech that is hard to hear, helped by the picture.

On ``av-digits`` (a handwritten digit and the same digit spoken), three models are
trained with the public API only (:class:`polymodal.Predictor`, the bundled datasets,
:func:`polymodal.data.noise.noisy_snr`): audio alone, image alone and the two fused.
Each is evaluated with white noise added to the test clips at a sweep of
signal-to-noise ratios, from clean to -10 dB. The fused model is trained with modality
dropout and on noisy copies of the training clips (multi-condition training), so that
it learns to lean on the picture when the sound is drowned.

``run(out, AVSNRSettings())`` trains (resuming from ``out/results.jsonl``), then writes
``av_snr.csv``, ``av_snr.json`` and ``av_snr.png`` under ``out``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.data.noise import noisy_snr

#: The evaluation sweep, dB (``inf`` is the clip as recorded).
SNRS: tuple[float, ...] = (math.inf, 20.0, 10.0, 5.0, 0.0, -5.0, -10.0)

#: setting -> the manifest columns it learns from.
SETTINGS: dict[str, tuple[str, ...]] = {
    "audio alone": ("audio",), "image alone": ("image",), "fused": ("image", "audio")}

Log = Callable[[str], None]


@dataclass
class AVSNRSettings:
    """What ``run`` trains and measures.

    Attributes:
        seeds: one model per setting and seed.
        epochs: training epochs (``max_epochs``).
        snrs: the evaluation sweep in dB (``math.inf``: no added noise).
        fusion: the fusion of the fused model.
        drop_modality: modality dropout of the fused model.
        augment_snrs: the SNRs that the noisy copies of the training clips are drawn
            from (multi-condition training of the models that hear; empty: none).
        augment_copies: noisy copies of each training row.
        preset: the Predictor preset.
        limit: rows per class of av-digits (``None``: all 1,797 rows).
        test_limit: evaluate on at most this many test rows (``None``: all).
    """

    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 10
    snrs: tuple[float, ...] = SNRS
    fusion: str = "late"
    drop_modality: float = 0.5
    augment_snrs: tuple[float, ...] = (10.0, 0.0, -5.0, -10.0, -15.0)
    augment_copies: int = 1
    preset: str = "fast"
    limit: int | None = None
    test_limit: int | None = None
    settings: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(SETTINGS))

    @classmethod
    def quick(cls) -> AVSNRSettings:
        """A minutes-long run: one seed, 4 epochs."""
        return cls(seeds=(0,), epochs=4)

    def key(self) -> str:
        """What a stored result must match to be reused."""
        return json.dumps({k: v for k, v in asdict(self).items() if k not in ("seeds",)},
                          sort_keys=True, default=str)


def quiet_lightning() -> None:
    """Keep Lightning's start-up lines (accelerator, tips) out of the progress output:
    its loggers get their level when it is imported, so import it first."""
    import lightning.pytorch  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def snr_label(snr: float) -> str:
    """``"clean"`` for ``inf``, else ``"10 dB"``."""
    return "clean" if math.isinf(snr) else f"{snr:g} dB"


def with_noisy_copies(manifest: Manifest, folder: Path, snrs: tuple[float, ...],
                      copies: int = 1, seed: int = 0, column: str = "audio",
                      log: Log | None = None) -> pd.DataFrame:
    """The rows of ``manifest`` (paths made absolute) followed by ``copies`` copies of
    every row whose ``column`` clip has white noise added at an SNR drawn (seeded) from
    ``snrs``; the noisy clips are written as WAV files under ``folder`` (reused when
    present). Copies keep their split and get ids ending in ``-copyK``."""
    import soundfile as sf

    table = manifest.table.copy()
    for col, role in manifest.modality_columns.items():
        if role.value in ("image", "audio"):
            paths = [manifest.resolve(i, col) for i in manifest.rows()]
            table[col] = [str(x) if x is not None else None for x in paths]
    parts = [table]
    ids = manifest.ids()
    rng = np.random.default_rng(seed)
    corrupt = {snr: noisy_snr("audio", snr, seed=seed * 1000 + k) for k, snr in
               enumerate(snrs)}
    for copy_no in range(copies if snrs else 0):
        sub = folder / f"copy{copy_no}"
        sub.mkdir(parents=True, exist_ok=True)
        copy = table.copy()
        paths_out: list[str | None] = []
        drawn = rng.choice(len(snrs), size=len(manifest))
        for i in manifest.rows():
            wave = manifest.decode(i, column)
            if wave is None:
                paths_out.append(None)
                continue
            snr = snrs[int(drawn[i])]
            noisy_wave = corrupt[snr](wave)  # drawn even when the file exists: same noise
            path = sub / f"{ids[i]}-snr{snr:g}.wav"
            if not path.exists():
                sf.write(path, noisy_wave, 16_000, subtype="FLOAT")
            paths_out.append(str(path))
        copy[column] = paths_out
        if "id" in copy.columns:
            copy["id"] = [f"{v}-copy{copy_no}" for v in table["id"]]
        parts.append(copy)
        if log:
            log(f"  noisy training copy {copy_no + 1} of {copies}: {len(copy)} clips at "
                f"SNRs drawn from {', '.join(snr_label(x) for x in snrs)}")
    return pd.concat(parts, ignore_index=True)


def _train_rows(manifest: Manifest, out: Path, s: AVSNRSettings, log: Log
                ) -> tuple[Manifest, Manifest | pd.DataFrame]:
    """(clean rows, training rows with their noisy copies): the clean train and val
    splits, and the same plus copies of the train split at ``s.augment_snrs``."""
    train_val = manifest.subset(np.flatnonzero(
        manifest.table["split"].isin(["train", "val"]).to_numpy()))
    if not s.augment_snrs:
        return train_val, train_val
    train = manifest.split("train")
    augmented = with_noisy_copies(train, out / "runs" / "noisy-train", s.augment_snrs,
                                  copies=s.augment_copies, log=log)
    val = with_noisy_copies(manifest.split("val"), out / "runs" / "noisy-val", ())
    return train_val, pd.concat([augmented, val], ignore_index=True)


def _results(path: Path, key: str) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r.get("key") == key:
                done[(r["setting"], r["seed"])] = r
    return done


def run(out: str | Path, settings: AVSNRSettings | None = None, *,
        data: str | Path | None = None, log: Log = print, plot: Path | None = None,
        train: bool = True) -> dict[str, Any]:
    """Train every setting for every seed (resuming from ``out/results.jsonl``),
    evaluate on the test split at every SNR, and write ``av_snr.csv`` (one row per
    setting and SNR: mean, std, per-seed accuracies), ``av_snr.json`` (the same, the
    settings, and whether the fused model stays above both single modalities) and the
    plot (``plot``, default ``out/av_snr.png``). ``data``: an av-digits manifest
    (default: made under ``$POLYMODAL_DATA``). ``train=False`` reports the results so
    far and trains nothing. Returns the JSON's content."""
    from polymodal import Predictor

    s = settings or AVSNRSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    quiet_lightning()
    manifest = Manifest.read(data if data is not None else
                             make_dataset("av-digits", limit=s.limit, show_progress=False))
    test = manifest.split("test")
    if s.test_limit is not None and len(test) > s.test_limit:
        test = test.subset(np.arange(s.test_limit))
    log(f"av-digits: {len(manifest)} rows, {len(test)} test rows; SNRs "
        f"{', '.join(snr_label(x) for x in s.snrs)}")
    results_path = out / "results.jsonl"
    key = s.key()
    done = _results(results_path, key)
    if train and any((n, seed) not in done for seed in s.seeds for n in s.settings):
        clean, augmented = _train_rows(manifest, out, s, log)
    for seed in s.seeds:
        for name, columns in s.settings.items():
            if (name, seed) in done or not train:
                log(f"{name}, seed {seed}: " + ("done before" if (name, seed) in done
                                               else "not trained (train=False)"))
                continue
            hears = "audio" in columns
            fused = len(columns) > 1
            start = time.perf_counter()
            log(f"{name}, seed {seed}: training on {', '.join(columns)} ...")
            p = Predictor(label="label", modalities=list(columns),
                          fusion=s.fusion if fused else "concat", preset=s.preset,
                          max_epochs=s.epochs, seed=seed,
                          drop_modality=s.drop_modality if fused else 0.0,
                          path=out / "runs" / f"{name.replace(' ', '-')}-{seed}")
            p.fit(augmented if hears else clean, progress=False)
            seconds = time.perf_counter() - start
            accuracy = []
            for k, snr in enumerate(s.snrs):
                noise = {"audio": noisy_snr("audio", snr, seed=10_000 + k)} if hears else None
                accuracy.append(p.evaluate(test, noise=noise)["accuracy"])
            record = {"key": key, "setting": name, "seed": seed, "columns": list(columns),
                      "train_seconds": seconds, "accuracy": accuracy,
                      "snrs": [snr_label(x) for x in s.snrs]}
            with results_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            done[(name, seed)] = record
            log(f"{name}, seed {seed}: {seconds:.0f} s; accuracy "
                + ", ".join(f"{snr_label(x)} {a:.3f}" for x, a in zip(s.snrs, accuracy,
                                                                      strict=True)))
    return write_outputs(out, s, [done[(n, seed)] for seed in s.seeds for n in s.settings
                                  if (n, seed) in done], plot=plot, n_test=len(test))


def summarize(records: list[dict[str, Any]], s: AVSNRSettings) -> list[dict[str, Any]]:
    """One row per setting and SNR: mean and std of the accuracy over the seeds."""
    rows = []
    for name in s.settings:
        runs = [r for r in records if r["setting"] == name]
        if not runs:
            continue
        acc = np.array([r["accuracy"] for r in runs])
        for k, snr in enumerate(s.snrs):
            rows.append({"setting": name, "snr": snr_label(snr),
                         "snr_db": None if math.isinf(snr) else snr,
                         "accuracy_mean": float(acc[:, k].mean()),
                         "accuracy_std": float(acc[:, k].std()), "seeds": len(runs),
                         "per_seed": [float(a) for a in acc[:, k]],
                         "train_seconds_mean": float(np.mean([r["train_seconds"]
                                                              for r in runs]))})
    return rows


def fused_margin(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Per SNR, the fused mean accuracy minus the better single modality's (``None``
    when a setting is missing)."""
    table = {(r["setting"], r["snr"]): r["accuracy_mean"] for r in rows}
    snrs = [r["snr"] for r in rows if r["setting"] == "fused"]
    if not snrs:
        return None
    try:
        return {x: table[("fused", x)] - max(table[("audio alone", x)],
                                             table[("image alone", x)]) for x in snrs}
    except KeyError:
        return None


def write_outputs(out: Path, s: AVSNRSettings, records: list[dict[str, Any]], *,
                  plot: Path | None = None, n_test: int | None = None) -> dict[str, Any]:
    """Write the CSV, JSON and plot of ``records``; returns the JSON's content."""
    rows = summarize(records, s)
    pd.DataFrame([{k: v for k, v in r.items() if k != "per_seed"} | {
        "per_seed": " ".join(f"{a:.4f}" for a in r["per_seed"])} for r in rows]).to_csv(
        out / "av_snr.csv", index=False)
    margin = fused_margin(rows)
    settings = asdict(s) | {"snrs": [snr_label(x) for x in s.snrs]}  # JSON has no inf
    summary = {"settings": settings, "test_rows": n_test,
               "rows": rows, "fused_minus_best_single": margin,
               "fused_above_both_everywhere": None if margin is None else
               bool(all(v > 0 for v in margin.values()))}
    (out / "av_snr.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot_path = plot or out / "av_snr.png"
    if rows:
        plot_sweep(rows, s, plot_path)
        summary["plot"] = str(plot_path)
    return summary


def plot_sweep(rows: list[dict[str, Any]], s: AVSNRSettings, path: Path) -> Path:
    """Accuracy (mean ± std over seeds) against the SNR of the added audio noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [snr_label(x) for x in s.snrs]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"audio alone": ("tab:orange", "s"), "image alone": ("tab:blue", "^"),
              "fused": ("tab:green", "o")}
    for name in s.settings:
        mine = {r["snr"]: r for r in rows if r["setting"] == name}
        if not mine:
            continue
        mean = np.array([mine[lab]["accuracy_mean"] for lab in labels])
        std = np.array([mine[lab]["accuracy_std"] for lab in labels])
        colour, marker = styles.get(name, (None, "o"))
        label = name if name != "fused" else f"fused ({s.fusion})"
        ax.plot(x, mean, marker=marker, color=colour, label=label)
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15)
    ax.set_xticks(x, labels)
    ax.set_xlabel("SNR of white noise added to the test clips")
    ax.set_ylabel("test accuracy")
    seeds = max(r["seeds"] for r in rows)
    ax.set_title(f"av-digits: accuracy against audio SNR ({seeds} seed{'s' * (seeds > 1)})")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
