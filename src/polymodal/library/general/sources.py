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


def caption_key(caption: str) -> str:
    """What counts as the same name across sources: its words, sorted, a plural ``s``
    dropped ("folder downloads" and "downloads folder" are one concept)."""
    words = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in caption.split()}
    return " ".join(sorted(words))


#: words of game-art file names that say a frame, not a thing (directions, actions)
_FRAME_WORDS = {"n", "s", "e", "w", "ne", "nw", "se", "sw", "attack", "defend", "die",
                "melee", "ranged", "idle", "moving", "leading", "healing", "magic",
                "flying", "bob", "hit", "miss", "death", "dying", "shadow", "mask", "alt",
                "large", "small", "tile", "base", "top", "bottom", "left", "right", "i",
                "ii", "iii", "iv", "v", "front", "back", "old", "new", "sheet", "frame",
                "cw", "ccw", "br", "bl", "tl", "tr", "ll", "lr", "ul", "ur", "lx", "rx"}


def clean_art_name(stem: str) -> str:
    """A game-art file name as words: numbers and frame words (directions, actions)
    dropped: ``spearman-attack-se-3`` -> "spearman"."""
    words = [w for w in re.split(r"[-_.\s]+", stem.lower()) if w and not w.isdigit()]
    words = [re.sub(r"\d+$", "", w) for w in words]
    return " ".join(w for w in words if len(w) > 1 and w not in _FRAME_WORDS)


def art_folder(folders: list[Path], suffix: str = "") -> pd.DataFrame:
    """One picture per cleaned name of the PNGs under ``folders`` (the first in sorted
    order), ``suffix`` appended to the words ("flag")."""
    rows: dict[str, str] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.png")):
            if path.is_symlink() or any(p in LEFT_OUT_CONTEXTS for p in path.parts):
                continue
            words = clean_art_name(path.stem)
            if words:
                rows.setdefault(f"{words} {suffix}".strip(), str(path))
    return pd.DataFrame({"image": list(rows.values()), "caption": list(rows)},
                        columns=["image", "caption"])


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
_ICONS = Path("/usr/share/icons")
_WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/images")
_FREECIV = Path("/usr/share/games/freeciv")
#: the sources only trained on (never measured by the benchmark's retrieval table)
TRAINING: dict[str, Source] = {
    "papirus": Source("papirus", "papirus-icon-theme", "GPL-3", "desktop icons (Papirus)",
                      lambda: icon_theme(_ICONS / "Papirus")),
    "breeze": Source("breeze", "breeze-icon-theme", "LGPL-3+", "desktop icons (KDE Breeze)",
                     lambda: icon_theme(_ICONS / "breeze")),
    "gnome": Source("gnome", "gnome-icon-theme", "GPL-2+ or CC-BY-SA-3.0",
                    "desktop icons (GNOME 2)", lambda: icon_theme(_ICONS / "gnome")),
    "mate": Source("mate", "mate-icon-theme", "GPL-2+ or CC-BY-SA-3.0", "desktop icons (MATE)",
                   lambda: icon_theme(_ICONS / "mate")),
    "faenza": Source("faenza", "faenza-icon-theme", "GPL-3", "desktop icons (Faenza)",
                     lambda: icon_theme(_ICONS / "Faenza")),
    "elementary": Source("elementary", "elementary-icon-theme", "GPL-3",
                         "desktop icons (elementary)",
                         lambda: icon_theme(_ICONS / "elementary")),
    "numix": Source("numix", "numix-icon-theme", "GPL-3", "desktop icons (Numix)",
                    lambda: icon_theme(_ICONS / "Numix")),
}
#: game art, trained on and measured (kinds no icon theme has)
GAME_ART: dict[str, Source] = {
    "wesnoth": Source("wesnoth", "wesnoth-1.16-data", "GPL-2+",
                      "game art (units, items, scenery, portraits, terrain)",
                      lambda: art_folder([_WESNOTH / f for f in
                                          ("units", "items", "scenery", "portraits",
                                           "attacks", "terrain")])),
    "freeciv": Source("freeciv", "freeciv-data", "GPL-2+",
                      "game art (nation flags, buildings, wonders)",
                      lambda: pd.concat([art_folder([_FREECIV / "flags"], "flag"),
                                         art_folder([_FREECIV / "buildings",
                                                     _FREECIV / "wonders"])],
                                        ignore_index=True)),
}
SOURCES.update(GAME_ART)
#: every source of the broad corpus, in the order names are kept when shared
CORPUS: dict[str, Source] = {**SOURCES, **TRAINING}
#: the source the bridge's temperature is chosen on (never an evaluation split)
TUNING = Source("tuxpaint-train", "tuxpaint-stamps-default", "GPL-2+", "clip art (stamps)",
                lambda: tuxpaint("train"))
