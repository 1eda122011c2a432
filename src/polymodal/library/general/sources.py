"""The captioned pictures that ``builtin:general`` is measured (and its bridge tuned) on,
each read from an installed package, with its data card in docs/general-model.md.

Kept out, whatever is installed (evaluation data held elsewhere): the packages of
:data:`HELD_OUT` and every emoji image set (an icon theme's ``emotes`` folder too)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: packages never read, for training, tuning or evaluation
HELD_OUT = ("openclipart-svg", "hydrogen-drumkits", "ktuberling-data", "fillets-ng-data")
#: icon-theme folders left out: emotes are emoji
LEFT_OUT_CONTEXTS = ("emotes", "emoji")
#: words of icon names that name no thing (file-format and toolkit prefixes)
_NOISE_WORDS = {"gnome", "gtk", "stock", "symbolic", "x", "fs", "mime", "xfce", "kde"}
_IMAGE_SUFFIXES = (".png", ".svg")


@dataclass(frozen=True)
class Source:
    """A captioned picture source: its name, Debian package, licence, what it is, and a
    reader of its rows (``image`` path, ``caption``)."""

    name: str
    package: str
    licence: str
    kind: str
    read: Callable[[], pd.DataFrame]

    def rows(self) -> pd.DataFrame:
        """Its rows, refused if the package is held out or not installed."""
        if self.package in HELD_OUT or "emoji" in self.package:
            raise ValueError(f"{self.package} is held-out evaluation data: never read here")
        table = self.read()
        if table.empty:
            raise FileNotFoundError(f"source {self.name}: nothing found; install the Debian "
                                    f"package {self.package} (apt-get install {self.package})")
        return table.assign(source=self.name).reset_index(drop=True)


def clean_icon_name(stem: str) -> str:
    """An icon's file name as words: ``folder-download`` -> "folder download",
    ``gnome-fs-trash-empty`` -> "trash empty"; toolkit prefixes and "symbolic" dropped."""
    words = [w for w in re.split(r"[-_.\s]+", stem.lower()) if w and w not in _NOISE_WORDS]
    return " ".join(words)


def icon_theme(folder: Path) -> pd.DataFrame:
    """One row per distinct picture of an icon theme (links to the same file count once,
    under the file's own name): its largest PNG or its SVG, the cleaned name as words."""
    best: dict[Path, tuple[int, Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix not in _IMAGE_SUFFIXES or path.is_symlink() or "symbolic" in path.name:
            continue
        if any(part in LEFT_OUT_CONTEXTS for part in path.parts):
            continue
        size = 10_000 if path.suffix == ".svg" else _size_of(path)
        key = Path(path.parent.name) / path.stem  # context / name, across sizes
        if key not in best or size > best[key][0]:
            best[key] = (size, path)
    rows = [{"image": str(p), "caption": clean_icon_name(p.stem)} for _, p in best.values()]
    table = pd.DataFrame(rows, columns=["image", "caption"])
    table = table[table["caption"].str.len() > 0]
    return table.drop_duplicates("caption").reset_index(drop=True)


def _size_of(path: Path) -> int:
    for part in reversed(path.parts):
        m = re.fullmatch(r"(\d+)x\d+", part)
        if m:
            return int(m.group(1))
    return 0


def tuxpaint(split: str) -> pd.DataFrame:
    """The bundled tuxpaint stamps of one split (their captions as they are)."""
    from polymodal.data.bundled import make_dataset

    manifest = Path(make_dataset("tuxpaint"))
    table = pd.read_csv(manifest)
    table = table[table["split"] == split]
    return pd.DataFrame({"image": [str(manifest.parent / p) for p in table["image"]],
                         "caption": table["caption"].to_numpy(),
                         "speech": [str(manifest.parent / p) if isinstance(p, str) else None
                                    for p in table["speech"]]})


SOURCES: dict[str, Source] = {
    "tuxpaint": Source("tuxpaint", "tuxpaint-stamps-default", "GPL-2+", "clip art (stamps)",
                       lambda: tuxpaint("test")),
    "adwaita": Source("adwaita", "adwaita-icon-theme", "CC-BY-SA-3.0 or LGPL-3",
                      "desktop icons (full colour)",
                      lambda: icon_theme(Path("/usr/share/icons/Adwaita"))),
    "tango": Source("tango", "tango-icon-theme", "public domain", "desktop icons (Tango)",
                    lambda: icon_theme(Path("/usr/share/icons/Tango/scalable"))),
    "oxygen": Source("oxygen", "oxygen-icon-theme", "LGPL-3+", "desktop icons (KDE Oxygen)",
                     lambda: icon_theme(Path("/usr/share/icons/oxygen/base"))),
}
#: the source the bridge's temperature is chosen on (never an evaluation split)
TUNING = Source("tuxpaint-train", "tuxpaint-stamps-default", "GPL-2+", "clip art (stamps)",
                lambda: tuxpaint("train"))
