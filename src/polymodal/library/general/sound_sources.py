"""Sounds with words that ``builtin:general``'s audio head is trained and measured on,
each read from an installed Debian package (data cards in docs/general-model.md).

A sound's words are its file name's (:func:`sound_name`: numbers dropped, ``-`` / ``_``
and camel case to spaces, each word once), one sound per name; the tuxpaint stamps'
sounds carry their stamp's caption ("A cow."). Music and voice lines are left out (the
transcript path finds speech); so are the tuxpaint test split's sounds (the mixed
folder's, :mod:`.mixed`) and the held-out packages (:data:`.sources.HELD_OUT`)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd

from polymodal.library.general.sources import Source, has_words

AUDIO_SUFFIXES = (".ogg", ".oga", ".wav", ".flac")
#: folders whose files are music or voice lines, not sound effects
_NOT_EFFECTS = {"music", "voice", "voices"}
_GAMES = Path("/usr/share/games")
_SOUNDS = Path("/usr/share/sounds")
#: 0 A.D.'s sound archive (read in place, the chosen members copied out once)
ZERO_AD_ARCHIVE = _GAMES / "0ad/mods/public/public.zip"
#: 0 A.D.'s abbreviations in sound file names, written out
_ZERO_AD_WORDS = {"sel": "select", "con": "construction", "fs": "footstep", "amb": "ambient",
                  "jav": "javelin", "hstep": "hoof step", "mstep": "step", "ballist": "ballista",
                  "civ": "", "gen": "", "mn": ""}
#: a sound longer than this (in bytes) is not an effect (loops of ambience, songs)
MAX_BYTES = 4_000_000


def sound_name(stem: str, prefix: str = "") -> str:
    """A sound's file name as words: ``bat-hit-2`` -> "bat hit", ``BirdyLay`` -> "birdy
    lay", ``Oxygen-Im-New-Mail`` (prefix "oxygen") -> "im new mail"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem).lower()
    words = [re.sub(r"\d+[a-z]?$", "", w) for w in re.split(r"[-_.\s]+", spaced)]
    words = [w for w in words if w and not w.isdigit() and w != prefix]
    return " ".join(dict.fromkeys(words))


def _named(rows: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"sound": list(rows.values()), "caption": list(rows)})


def sound_folder(folder: Path, prefix: str = "", recursive: bool = True,
                 words: dict[str, str] | None = None) -> pd.DataFrame:
    """One sound per name of the audio files under ``folder`` (the first in sorted
    order), music and voice folders and files over :data:`MAX_BYTES` left out; ``words``
    rewrites a file name's abbreviations."""
    paths = sorted(folder.rglob("*") if recursive else folder.iterdir())
    rows: dict[str, str] = {}
    for path in paths:
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            continue
        if _NOT_EFFECTS & {p.lower() for p in path.relative_to(folder).parts[:-1]}:
            continue
        if prefix and not path.name.lower().startswith(prefix):
            continue
        if path.stat().st_size > MAX_BYTES:
            continue
        caption = _rewrite(sound_name(path.stem, prefix), words)
        if has_words(caption):
            rows.setdefault(caption, str(path))
    return _named(rows)


def _rewrite(caption: str, words: dict[str, str] | None) -> str:
    if not words:
        return caption
    out = [words.get(w, w) for w in caption.split()]
    return " ".join(dict.fromkeys(w for w in " ".join(out).split() if w))


def zero_ad(archive: Path = ZERO_AD_ARCHIVE, cache: Path | None = None) -> pd.DataFrame:
    """0 A.D.'s sound effects (``audio/`` of its archive, music and voices left out),
    one per name, each copied out of the archive once into ``cache`` (default
    ``$POLYMODAL_MODELS/general-sounds/0ad``)."""
    if not archive.exists():
        return _named({})
    if cache is None:
        from polymodal.library.builtin import models_home

        cache = models_home() / "general-sounds" / "0ad"
    rows: dict[str, str] = {}
    with zipfile.ZipFile(archive) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if parts[0] != "audio" or Path(info.filename).suffix.lower() not in AUDIO_SUFFIXES:
                continue
            if _NOT_EFFECTS & set(parts[1:-1]) or info.file_size > MAX_BYTES:
                continue
            caption = _rewrite(sound_name(Path(parts[-1]).stem), _ZERO_AD_WORDS)
            if not has_words(caption) or caption in rows:
                continue
            out = cache / Path(*parts[1:])
            if not out.exists() or out.stat().st_size != info.file_size:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(f".{out.name}.tmp")
                tmp.write_bytes(z.read(info))
                tmp.replace(out)
            rows[caption] = str(out)
    return _named(rows)


def tuxpaint_sounds(splits: tuple[str, ...] = ("train", "val")) -> pd.DataFrame:
    """The tuxpaint stamps' sound effects of ``splits`` (never the test split: the
    mixed folder's), one row per sound file, with its first stamp's caption."""
    from polymodal.data.bundled import make_dataset

    manifest = Path(make_dataset("tuxpaint"))
    table = pd.read_csv(manifest)
    table = table[table["split"].isin(splits) & table["sound"].notna()]
    table = table.drop_duplicates("sound")
    return pd.DataFrame({"sound": [str(manifest.parent / s) for s in table["sound"]],
                         "caption": list(table["caption"])})


def _folder(path: Path, **kwargs: object) -> object:
    return lambda: sound_folder(path, **kwargs)  # type: ignore[arg-type]


#: every sound source: its name, package, licence, kind and reader (rows ``sound``,
#: ``caption``)
SOUND_SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("tuxpaint-sounds", "tuxpaint-stamps-default", "GPL-2+",
           "recorded sound effects of stamps (animals, vehicles, things)", tuxpaint_sounds),
    Source("wesnoth-sounds", "wesnoth-1.16-data", "GPL-2+", "game sound effects",
           _folder(_GAMES / "wesnoth/1.16/data/core/sounds")),
    Source("supertux-sounds", "supertux-data", "GPL-2+ / GPL-3+", "game sound effects",
           _folder(_GAMES / "supertux2/sounds")),
    Source("hedgewars-sounds", "hedgewars-data", "GFDL-1.3 / GPL-2", "game sound effects",
           _folder(_GAMES / "hedgewars/Data/Sounds", recursive=False)),
    Source("freedesktop-sounds", "sound-theme-freedesktop", "GPL-2+ / CC-BY(-SA)-3.0",
           "desktop event sounds", _folder(_SOUNDS / "freedesktop")),
    Source("oxygen-sounds", "oxygen-sounds", "LGPL-3+", "desktop event sounds",
           _folder(_SOUNDS, prefix="oxygen", recursive=False)),
    Source("0ad-sounds", "0ad-data", "CC-BY-SA-3.0 (art and sounds)",
           "game sound effects (animals, weapons, work, weather, buildings)", zero_ad),
    Source("widelands-sounds", "widelands-data", "GPL-2+ / CC-BY-SA-3.0",
           "game sound effects (animals, crafts, farming)",
           _folder(_GAMES / "widelands/data/sound")),
    Source("supertuxkart-sounds", "supertuxkart-data",
           "CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC-BY-3.0 / CC0 (per file)",
           "game sound effects (vehicles, weather, animals)",
           _folder(_GAMES / "supertuxkart/data/sfx")),
    Source("minetest-sounds", "minetest-data", "CC-BY-SA-3.0 / CC0 (per file)",
           "game sound effects (footsteps, digging, doors, fire, water)",
           _folder(_GAMES / "minetest/games/minetest_game/mods",
                   words={"default": "", "env": "", "xpanes": ""})),
    Source("lincity-sounds", "lincity-ng-data", "GPL-2+", "game sound effects (city "
           "buildings, traffic, industry)", _folder(_GAMES / "lincity-ng/sounds")),
    Source("desktop-sounds", "deepin-sound-theme", "GPL-3+ / CC-BY-SA-4.0 / GPL-2+",
           "desktop event sounds (deepin, Yaru, Psi+)", lambda: pd.concat([
               sound_folder(_SOUNDS / "deepin"), sound_folder(_SOUNDS / "Yaru"),
               sound_folder(Path("/usr/share/psi-plus/sound"))]).drop_duplicates("caption")),
    Source("small-games-sounds", "pingus-data", "GPL-2+ / GPL-2",
           "game sound effects (Pingus, Frozen Bubble, Extreme Tux Racer)", lambda: pd.concat([
               sound_folder(_GAMES / "pingus/data/sounds"),
               sound_folder(_GAMES / "frozen-bubble/snd"),
               sound_folder(_GAMES / "etr/sounds")]).drop_duplicates("caption")),
)}
#: the Debian packages the sound sources read (``make model`` installs them)
SOUND_PACKAGES = ("tuxpaint-stamps-default", "wesnoth-1.16-data", "supertux-data",
                  "hedgewars-data", "sound-theme-freedesktop", "oxygen-sounds", "0ad-data",
                  "widelands-data", "supertuxkart-data", "minetest-data", "lincity-ng-data",
                  "deepin-sound-theme", "yaru-theme-sound", "psi-plus-sounds", "pingus-data",
                  "frozen-bubble-data", "extremetuxracer-data")
