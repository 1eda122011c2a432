"""Image + text recognition: a scan with its record.

Two datasets, each with three classifiers trained through the public API only
(:class:`polymodal.Predictor`, the bundled datasets): the picture alone, the text alone
and the two fused (gated, so the modality report shows the learned gate weights).

- ``tuxpaint``: a stamp's picture and its caption, the category as label; frozen
  offline pretrained towers (``pretrained`` preset) with cached features.
- ``fashion-mnist`` with short noisy records: the bundled captions name the class, so
  they would make the task trivial; instead each picture gets a record written here
  (:func:`fashion_record`) of one or two attributes of its class that several classes
  share ("upper body", "long sleeves", "footwear"...), a quarter of them replaced by an
  attribute of another class, a typo in one word of ten, and 15% of records empty.
  Neither modality alone is enough: the pictures confuse shirts, tops, pullovers and
  coats; the records name attributes, never the class.

``run(out, ImageTextSettings())`` trains (resuming from ``out/results.jsonl``) and
writes ``image_text.csv``, ``image_text.json``, ``image_text.png`` and, per dataset,
the fused model's modality report (CSV) and plots.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.studies.av_snr import quiet_lightning
from polymodal.data import Manifest
from polymodal.data.bundled import data_home, make_dataset

Log = Callable[[str], None]

#: Attributes of each Fashion-MNIST class: true, short, and shared between classes.
FASHION_FACTS: dict[str, tuple[str, ...]] = {
    "T-shirt/top": ("upper body", "short sleeves", "cotton", "no buttons", "casual"),
    "Trouser": ("lower body", "two legs", "waist size", "belt loops"),
    "Pullover": ("upper body", "long sleeves", "knitted", "no buttons", "warm"),
    "Dress": ("one piece", "hemline", "waist", "casual"),
    "Coat": ("upper body", "long sleeves", "outerwear", "warm", "pockets"),
    "Sandal": ("footwear", "open toe", "straps", "summer"),
    "Shirt": ("upper body", "collar", "buttons", "long sleeves", "cotton"),
    "Sneaker": ("footwear", "laces", "rubber sole", "sport"),
    "Bag": ("handle", "carried", "strap", "pockets"),
    "Ankle boot": ("footwear", "heel", "zip", "warm"),
}


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 3:
        return word
    i = int(rng.integers(len(word) - 1))
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def fashion_record(label: str, rng: np.random.Generator, *, wrong: float = 0.25,
                   typo: float = 0.1, empty: float = 0.15) -> str:
    """A short noisy record for a picture of class ``label``: ``"ref 4821: long
    sleeves; warm"``. One or two of the class's attributes; each replaced with
    probability ``wrong`` by an attribute of another class; each word misspelt (two
    letters swapped) with probability ``typo``; ``""`` (no record) with probability
    ``empty``."""
    if rng.random() < empty:
        return ""
    facts = list(FASHION_FACTS[label])
    others = [c for c in FASHION_FACTS if c != label]
    chosen = [facts[i] for i in rng.choice(len(facts), size=int(rng.integers(1, 3)),
                                           replace=False)]
    for k in range(len(chosen)):
        if rng.random() < wrong:
            other = FASHION_FACTS[others[int(rng.integers(len(others)))]]
            chosen[k] = other[int(rng.integers(len(other)))]
    words = "; ".join(chosen).split(" ")
    words = [_typo(w, rng) if rng.random() < typo else w for w in words]
    return f"ref {int(rng.integers(1000, 10000))}: " + " ".join(words)


def fashion_with_records(manifest: Manifest, per_class: dict[str, int], seed: int = 0
                         ) -> pd.DataFrame:
    """A seeded sample of ``manifest`` (bundled fashion-mnist) with ``per_class[split]``
    pictures of each class per split, image paths made absolute, the caption dropped
    and a ``record`` from :func:`fashion_record` in its place."""
    rng = np.random.default_rng(seed)
    table = manifest.table
    picked: list[int] = []
    for split, n in per_class.items():
        rows = table.index[table["split"] == split]
        for _label, group in table.loc[rows].groupby("label", sort=True):
            take = min(n, len(group))
            picked += [int(i) for i in rng.choice(group.index.to_numpy(), take, replace=False)]
    picked.sort()
    out = pd.DataFrame({
        "id": table.loc[picked, "id"].to_numpy(),
        "image": [str(manifest.resolve(i, "image")) for i in picked],
        "record": [fashion_record(str(table.at[i, "label"]), rng) for i in picked],
        "label": table.loc[picked, "label"].to_numpy(),
        "split": table.loc[picked, "split"].to_numpy()})
    return out


@dataclass
class DatasetPlan:
    """How one dataset is trained: its text column, preset, epochs."""

    name: str
    image: str
    text: str
    preset: str
    epochs: int
    fusion: str = "gated"
    drop_modality: float = 0.2


@dataclass
class ImageTextSettings:
    """What ``run`` trains and measures.

    Attributes:
        seeds: one model per dataset, setting and seed.
        datasets: the datasets (``tuxpaint``, ``fashion-mnist``).
        tuxpaint_epochs / fashion_epochs: training epochs.
        tuxpaint_limit: rows per class of tuxpaint (``None``: all 950).
        fashion_per_class: pictures per class and split drawn from fashion-mnist.
        cache_dir: the feature cache of the frozen pretrained towers (default:
            ``$POLYMODAL_DATA/feature-cache``).
    """

    seeds: tuple[int, ...] = (0, 1)
    datasets: tuple[str, ...] = ("tuxpaint", "fashion-mnist")
    tuxpaint_epochs: int = 40
    fashion_epochs: int = 10
    tuxpaint_limit: int | None = None
    tuxpaint_preset: str = "pretrained"
    fashion_preset: str = "fast"
    fashion_per_class: dict[str, int] = field(
        default_factory=lambda: {"train": 500, "val": 100, "test": 200})
    cache_dir: str | None = None

    @classmethod
    def quick(cls) -> ImageTextSettings:
        """A minutes-long run: small samples, one seed, few epochs."""
        return cls(seeds=(0,), tuxpaint_epochs=3, fashion_epochs=3, tuxpaint_limit=3,
                   fashion_per_class={"train": 30, "val": 10, "test": 20})

    def plans(self) -> list[DatasetPlan]:
        known = {"tuxpaint": DatasetPlan("tuxpaint", "image", "caption",
                                         self.tuxpaint_preset, self.tuxpaint_epochs),
                 "fashion-mnist": DatasetPlan("fashion-mnist", "image", "record",
                                              self.fashion_preset, self.fashion_epochs)}
        unknown = [d for d in self.datasets if d not in known]
        if unknown:
            raise ValueError(f"unknown datasets {unknown}; known: {sorted(known)}")
        return [known[d] for d in self.datasets]

    def key(self, dataset: str) -> str:
        """What a stored result of ``dataset`` must match to be reused."""
        prefix = "tuxpaint_" if dataset == "tuxpaint" else "fashion_"
        return json.dumps({k: v for k, v in asdict(self).items() if k.startswith(prefix)},
                          sort_keys=True, default=str)


def settings_of(plan: DatasetPlan) -> dict[str, list[str]]:
    """setting name -> its columns."""
    return {"image alone": [plan.image], f"{plan.text} alone": [plan.text],
            f"image + {plan.text} ({plan.fusion})": [plan.image, plan.text]}


def load_dataset(plan: DatasetPlan, s: ImageTextSettings, folder: Path,
                 data: Path | None = None) -> Manifest:
    """The manifest of ``plan``'s dataset (fashion-mnist: the sample with records,
    written to ``folder/fashion-mnist-records.csv``)."""
    if plan.name == "tuxpaint":
        return Manifest.read(data or make_dataset("tuxpaint", limit=s.tuxpaint_limit,
                                                  show_progress=False), label="label")
    bundled = Manifest.read(data or make_dataset("fashion-mnist", show_progress=False),
                            label="label")
    table = fashion_with_records(bundled, s.fashion_per_class)
    path = folder / "fashion-mnist-records.csv"
    table.to_csv(path, index=False)
    return Manifest.read(path, label="label", roles={"record": "text"})


def _done(path: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            out[(r["key"], r["setting"], r["seed"])] = r
    return out


def run(out: str | Path, settings: ImageTextSettings | None = None, *,
        data: dict[str, Path] | None = None, log: Log = print,
        plot: Path | None = None, train: bool = True) -> dict[str, Any]:
    """Train and evaluate every dataset, setting and seed (resuming from
    ``out/results.jsonl``); write ``image_text.csv`` / ``.json`` / ``.png`` (``plot``)
    and per dataset ``out/<dataset>/modality_report.csv`` and the fused model's plots
    (seed of the first). ``data``: manifests to use instead of the bundled ones, by
    dataset name. ``train=False`` reports the results so far and trains nothing.
    Returns the JSON's content."""
    from polymodal import Predictor

    s = settings or ImageTextSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    quiet_lightning()
    cache = Path(s.cache_dir) if s.cache_dir else data_home() / "feature-cache"
    results_path = out / "results.jsonl"
    done = _done(results_path)
    records: list[dict[str, Any]] = []
    reports: dict[str, list[dict[str, Any]]] = {}
    for plan in s.plans():
        folder = out / plan.name
        folder.mkdir(parents=True, exist_ok=True)
        manifest = load_dataset(plan, s, folder, (data or {}).get(plan.name))
        test = manifest.split("test")
        key = f"{plan.name}:{s.key(plan.name)}"
        log(f"{plan.name}: {len(manifest)} rows, {len(test)} test rows, "
            f"{manifest.table['label'].nunique()} classes")
        for seed in s.seeds:
            for name, columns in settings_of(plan).items():
                fused = len(columns) > 1
                report_path = folder / "modality_report.csv"
                if (key, name, seed) in done and (not train or not (
                        fused and seed == s.seeds[0] and not report_path.exists())):
                    log(f"  {name}, seed {seed}: done before")
                    records.append(done[(key, name, seed)])
                    continue
                if not train:
                    log(f"  {name}, seed {seed}: not trained (train=False)")
                    continue
                log(f"  {name}, seed {seed}: training on {', '.join(columns)} ...")
                start = time.perf_counter()
                p = Predictor(label="label", modalities=columns,
                              fusion=plan.fusion if fused else "concat",
                              preset=plan.preset, max_epochs=plan.epochs, seed=seed,
                              drop_modality=plan.drop_modality if fused else 0.0,
                              cache_dir=cache,
                              path=folder / "runs" / f"{name.split(' (')[0]}-{seed}"
                              .replace(" ", "-").replace("+", "and"))
                p.fit(manifest, progress=False)
                seconds = time.perf_counter() - start
                metrics = p.evaluate(test)
                record = {"key": key, "dataset": plan.name, "setting": name, "seed": seed,
                          "columns": columns, "accuracy": metrics["accuracy"],
                          "macro_f1": metrics["macro_f1"], "train_seconds": seconds}
                if fused and seed == s.seeds[0]:
                    report = p.modality_report(test)
                    report.to_csv(report_path, index=False)
                    p.plot(test, folder)
                if (key, name, seed) not in done:
                    with results_path.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
                    done[(key, name, seed)] = record
                records.append(done[(key, name, seed)])
                log(f"  {name}, seed {seed}: accuracy {metrics['accuracy']:.3f}, "
                    f"macro-F1 {metrics['macro_f1']:.3f} ({seconds:.0f} s)")
        report_path = folder / "modality_report.csv"
        if report_path.exists():
            reports[plan.name] = pd.read_csv(report_path).to_dict("records")
    return write_outputs(out, s, records, reports, plot=plot)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per dataset and setting: accuracy and macro-F1 over the seeds."""
    rows = []
    frame = pd.DataFrame(records)
    if frame.empty:
        return rows
    for (dataset, setting), g in frame.groupby(["dataset", "setting"], sort=False):
        rows.append({"dataset": dataset, "setting": setting, "seeds": len(g),
                     "accuracy_mean": float(g["accuracy"].mean()),
                     "accuracy_std": float(g["accuracy"].std(ddof=0)),
                     "macro_f1_mean": float(g["macro_f1"].mean()),
                     "train_seconds_mean": float(g["train_seconds"].mean())})
    return rows


def write_outputs(out: Path, s: ImageTextSettings, records: list[dict[str, Any]],
                  reports: dict[str, list[dict[str, Any]]], *, plot: Path | None = None
                  ) -> dict[str, Any]:
    """Write the CSV, JSON and bar chart; returns the JSON's content."""
    rows = summarize(records)
    pd.DataFrame(rows).to_csv(out / "image_text.csv", index=False)
    fused_gain = {}
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = {r["setting"]: r["accuracy_mean"] for r in rows if r["dataset"] == dataset}
        fused = [v for k, v in mine.items() if "+" in k]
        single = [v for k, v in mine.items() if "+" not in k]
        if fused and single:
            fused_gain[dataset] = fused[0] - max(single)
    summary = {"settings": asdict(s), "rows": rows, "fused_minus_best_single": fused_gain,
               "modality_report": reports}
    plot_path = plot or out / "image_text.png"
    if rows:
        plot_bars(rows, plot_path)
        summary["plot"] = str(plot_path)
    (out / "image_text.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def plot_bars(rows: list[dict[str, Any]], path: Path) -> Path:
    """Test accuracy (mean ± std over seeds) of each setting, a group per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.8),
                             squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        mine = [r for r in rows if r["dataset"] == dataset]
        colours = ["tab:blue", "tab:orange", "tab:green"][:len(mine)]
        ax.bar(range(len(mine)), [r["accuracy_mean"] for r in mine],
               yerr=[r["accuracy_std"] for r in mine], color=colours, capsize=4)
        for i, r in enumerate(mine):
            ax.text(i, r["accuracy_mean"] / 2, f"{r['accuracy_mean']:.3f}", ha="center",
                    color="white", fontsize=9)
        ax.set_xticks(range(len(mine)),
                      [r["setting"].replace(" (", "\n(") for r in mine], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(dataset)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
