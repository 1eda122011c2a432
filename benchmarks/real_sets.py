"""Five labelled sets the project did not make, from the package registries, for the
real-data suite (``benchmarks/real_data.py``); each written as a manifest with a data
card. Nothing here is held-out evaluation data (openclipart-svg, hydrogen-drumkits,
ktuberling-data, fillets-ng-data, emoji sets): icon themes' ``emotes`` folders are
left out too, as emoji-like."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RealSet:
    """A set: what it is, where it comes from, and how its manifest is made."""

    name: str
    kind: str
    source: str
    licence: str
    words: str  # how labels (and text) were derived
    make: Callable[[Path, bool], pd.DataFrame]


def _cap(table: pd.DataFrame, per_class: int, minimum: int, seed: int = 0) -> pd.DataFrame:
    """At most ``per_class`` rows of each label (seeded), labels with fewer than
    ``minimum`` rows dropped."""
    if table.empty:  # nothing found: :func:`make` names the package to install
        return table
    counts = table["label"].value_counts()
    table = table[table["label"].isin(counts[counts >= minimum].index)]
    shuffled = table.sample(frac=1.0, random_state=seed)
    return shuffled.groupby("label").head(per_class).sort_values("id").reset_index(drop=True)


def _sonic_pi(out: Path, quick: bool) -> pd.DataFrame:
    folder = Path("/usr/share/sonic-pi/samples")
    rows = [{"id": p.stem, "audio": str(p), "label": p.stem.split("_")[0]}
            for p in sorted(folder.glob("*.flac"))]
    return _cap(pd.DataFrame(rows), 4 if quick else 30, 8)


def _klettres(out: Path, quick: bool) -> pd.DataFrame:
    rows = []
    for lang in sorted(Path("/usr/share/klettres").iterdir()):
        for p in sorted((lang / "alpha").glob("*.ogg")) if (lang / "alpha").is_dir() else []:
            rows.append({"id": f"{lang.name}-{p.stem}", "audio": str(p), "label": lang.name})
    return _cap(pd.DataFrame(rows), 4 if quick else 25, 22)


CONTEXTS = ("actions", "apps", "categories", "devices", "mimetypes", "places", "status")


def _icons(folder: Path, with_names: bool, per_class: int) -> pd.DataFrame:
    rows = []
    for context in CONTEXTS:
        for p in sorted((folder / context).glob("*.png")):
            if p.is_symlink():  # an alias of another icon: the same picture twice
                continue
            row = {"id": f"{context}-{p.stem}", "image": str(p), "label": context}
            if with_names:
                row["name"] = p.stem.replace("-", " ").replace("_", " ")
            rows.append(row)
    return _cap(pd.DataFrame(rows), per_class, 20)


def _oxygen(out: Path, quick: bool) -> pd.DataFrame:
    return _icons(Path("/usr/share/icons/oxygen/base/48x48"), True, 4 if quick else 70)


def _tango(out: Path, quick: bool) -> pd.DataFrame:
    return _icons(Path("/usr/share/icons/Tango/32x32"), False, 4 if quick else 50)


def _digits(out: Path, quick: bool) -> pd.DataFrame:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        path = folder / f"{i:04d}.png"
        if not path.exists():
            Image.fromarray((255 - pixels * 16).clip(0, 255).astype(np.uint8)).save(path)
        rows.append({"id": f"{i:04d}", "image": str(path), "label": str(label)})
    return _cap(pd.DataFrame(rows), 4 if quick else 50, 10)


SETS = (
    RealSet("sonic-pi-samples", "real sound recordings (instrument and effect samples)",
            "Debian package sonic-pi-samples (the Sonic Pi sample library)",
            "CC0 for most samples (Freesound recordings), MIT / Zlib / CC-BY-SA-4.0 for "
            "a few; each file's licence in /usr/share/doc/sonic-pi-samples/copyright",
            "label: the sample's family, the prefix of its file name (bd, drum, elec, "
            "tabla, ...); families with at least 8 samples", _sonic_pi),
    RealSet("klettres-data", "spoken words (letters spoken by native speakers)",
            "Debian package klettres-data (KDE's KLettres: letters spoken in 25 languages)",
            "GPL-2.0-or-later (see /usr/share/doc/klettres-data/copyright)",
            "label: the language of the speaker (its folder); the alphabet recordings "
            "only; languages with at least 22", _klettres),
    RealSet("oxygen-icons", "pictures with text (icons and their names)",
            "Debian package oxygen-icon-theme (KDE's Oxygen icons, 48x48 PNG)",
            "LGPL-3.0-or-later (see /usr/share/doc/oxygen-icon-theme/copyright)",
            "label: the icon's context folder (actions, apps, devices, ...); text: the "
            "file name with dashes as spaces; aliases (symlinks) and emotes left out",
            _oxygen),
    RealSet("tango-icons", "drawings with labels (icons, picture only)",
            "Debian package tango-icon-theme (the Tango Desktop Project's icons, 32x32)",
            "Public domain (see /usr/share/doc/tango-icon-theme/copyright)",
            "label: the icon's context folder; no text; aliases and emotes left out",
            _tango),
    RealSet("uci-digits", "scans of handwriting (8x8 grey digits)",
            "PyPI scikit-learn, sklearn.datasets.load_digits (UCI Optical Recognition of "
            "Handwritten Digits, 43 writers)", "CC BY 4.0 (UCI)",
            "label: the digit; picture only", _digits),
)


def make(real: RealSet, root: Path, quick: bool) -> Path:
    """The manifest of ``real`` under ``root`` (made once), with its data card."""
    folder = root / real.name / ("quick" if quick else "full")
    manifest = folder / "manifest.csv"
    if not manifest.exists():
        folder.mkdir(parents=True, exist_ok=True)
        table = real.make(folder, quick)
        if table.empty:
            raise FileNotFoundError(f"{real.name}: no rows found; its source is "
                                    f"{real.source} (make bench installs it)")
        table.to_csv(manifest, index=False)
        counts = table["label"].value_counts()
        (folder / "CARD.md").write_text(
            f"# {real.name}\n\n{real.kind}.\n\n- source: {real.source}\n- licence: "
            f"{real.licence}\n- rows: {len(table)}, {len(counts)} classes "
            f"({counts.min()}-{counts.max()} per class)\n- words: {real.words}\n",
            encoding="utf-8")
    return manifest
