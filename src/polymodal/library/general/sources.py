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
    table = table[table["caption"].map(has_words)]
    return table.drop_duplicates("caption").reset_index(drop=True)


def has_words(caption: str) -> bool:
    """Whether a cleaned name holds a word: a token of two letters or more that is not
    a hash ("3f2a9c0d", numbers only and "7" carry no words)."""
    return any(sum(ch.isalpha() for ch in w) >= 2 and not _HASH.fullmatch(w)
               for w in caption.split())


_HASH = re.compile(r"(?=.*\d)[0-9a-f]{8,}")


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


def _named(rows: dict[str, str]) -> pd.DataFrame:
    """The ``image`` / ``caption`` table of a caption -> picture path mapping."""
    return pd.DataFrame({"image": list(rows.values()), "caption": list(rows)},
                        columns=["image", "caption"])


def art_folder(folders: list[Path], suffix: str = "") -> pd.DataFrame:
    """One picture per cleaned name of the PNGs under ``folders`` (the first in sorted
    order), ``suffix`` appended to the words ("flag")."""
    rows: dict[str, str] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.png")):
            if path.is_symlink() or any(p in LEFT_OUT_CONTEXTS for p in path.parts):
                continue
            words = clean_art_name(path.stem)
            if has_words(words):
                rows.setdefault(f"{words} {suffix}".strip(), str(path))
    return _named(rows)


def split_words(stem: str) -> str:
    """A file name's words, camel case split: ``AkuAku3`` -> "aku aku"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem)
    return clean_art_name(spaced)


def named_sprites(folder: Path, suffix: str = "", by_folder: bool = False) -> pd.DataFrame:
    """One picture per name of the PNGs under ``folder``: the file name's words (camel
    case split) and ``suffix``, or (``by_folder``) the folder's words then the file's,
    each word once ("mr iceblock melting")."""
    rows: dict[str, str] = {}
    for path in sorted(folder.rglob("*.png")):
        if path.is_symlink() or any(p in LEFT_OUT_CONTEXTS for p in path.parts):
            continue
        stem = f"{path.parent.name} {path.stem}" if by_folder else path.stem
        name = split_words(stem)
        caption = " ".join(dict.fromkeys(name.split() + suffix.split()))
        if has_words(name):  # the suffix alone names nothing
            rows.setdefault(caption, str(path))
    return _named(rows)


def dia_shapes(folder: Path = Path("/usr/share/dia/shapes")) -> pd.DataFrame:
    """Dia's diagram shapes: each shape's toolbox picture (its ``<icon>``), its
    ``<name>`` as words without the sheet's prefix ("Cisco - 100BaseT Hub" -> "100baset
    hub"); a name kept once."""
    rows: dict[str, str] = {}
    for shape in sorted(folder.rglob("*.shape")):
        text = shape.read_text(errors="replace")
        name, icon = re.search(r"<name>([^<]*)</name>", text), \
            re.search(r"<icon>([^<]*)</icon>", text)
        if not name or not icon or not (shape.parent / icon.group(1)).is_file():
            continue
        title = name.group(1).split(" - ", 1)[-1]
        words = [w for w in re.split(r"[^0-9a-z+]+", title.lower()) if w]
        caption = " ".join(dict.fromkeys(words))
        if has_words(caption):
            rows.setdefault(caption, str(shape.parent / icon.group(1)))
    return _named(rows)


def well_formed(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose picture is not an SVG that fails to parse as XML (12 of deepin's
    use an unbound namespace prefix: no rasteriser reads them)."""
    import xml.etree.ElementTree as ET

    def ok(path: str) -> bool:
        if not path.endswith(".svg"):
            return True
        try:
            ET.parse(path)
        except ET.ParseError:
            return False
        return True

    return table[table["image"].map(ok)].reset_index(drop=True)


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
    "deepin": Source("deepin", "deepin-icon-theme", "LGPL-3+", "desktop icons (deepin: "
                     "bloom and bloom-classic)",
                     lambda: well_formed(pd.concat([icon_theme(_ICONS / "bloom"),
                                                    icon_theme(_ICONS / "bloom-classic")],
                                                   ignore_index=True))),
    "paper": Source("paper", "paper-icon-theme", "CC-BY-SA-4.0 (icons), GPL-3",
                    "desktop icons (Paper)", lambda: icon_theme(_ICONS / "Paper")),
    "obsidian": Source("obsidian", "obsidian-icon-theme", "GPL-3",
                       "desktop icons (Obsidian, Faenza-like)",
                       lambda: icon_theme(_ICONS / "Obsidian")),
    "hedgewars": Source("hedgewars", "hedgewars-data", "GFDL-1.3 (graphics)",
                        "game art (hats, flags, graves)",
                        lambda: pd.concat([named_sprites(_HEDGEWARS / "Hats", "hat"),
                                           named_sprites(_HEDGEWARS / "Flags", "flag"),
                                           named_sprites(_HEDGEWARS / "Graves", "grave")],
                                          ignore_index=True)),
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
_SUPERTUX = Path("/usr/share/games/supertux2/images")
_HEDGEWARS = Path("/usr/share/games/hedgewars/Data/Graphics")
GAME_ART["supertux"] = Source(
    "supertux", "supertux-data", "GPL-2+ / GPL-3+ (CC-BY-SA-3.0 for some art)",
    "game art (creatures, objects, power-ups, tiles)",
    lambda: pd.concat([named_sprites(_SUPERTUX / f, by_folder=True)
                       for f in ("creatures", "objects", "powerups", "tiles")],
                      ignore_index=True).drop_duplicates("caption"))
#: diagram symbols: a kind no icon theme or game has (measured)
DIAGRAMS: dict[str, Source] = {
    "dia": Source("dia", "dia-common", "GPL-2+", "diagram shapes (network, electric, "
                  "flowchart, chemical engineering, ...)", dia_shapes)}
SOURCES.update(GAME_ART)
SOURCES.update(DIAGRAMS)
#: every source of the broad corpus, in the order names are kept when shared
CORPUS: dict[str, Source] = {**SOURCES, **TRAINING}
#: the source the bridge's temperature is chosen on (never an evaluation split)
TUNING = Source("tuxpaint-train", "tuxpaint-stamps-default", "GPL-2+", "clip art (stamps)",
                lambda: tuxpaint("train"))
