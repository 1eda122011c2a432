"""Zero-shot classification by ``builtin:general`` on every labelled set we have: the
bundled ones (tuxpaint's categories, fashion-mnist, av-digits' pictures and spoken
digits) and the real-data suite's five (:mod:`benchmarks.real_sets`), against chance,
the untrained bridge (the same towers, heads that learnt nothing) and
``builtin:lit-tuxpaint``. No labels are used: each class is named in words (the label
as a user would write it, :data:`CLASS_WORDS`) and every row of a set is classified.
Pictures go through the image tower, sounds through the audio one (for the general
model since 0.4: what Whisper hears said and how the clip sounds, by how surely it is
speech; :mod:`benchmarks.general_sounds` measures the transcript alone beside it)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

#: each labelled set's labels as words (a digit's name, a sample family's instrument,
#: a language's name, an icon folder's kind); a label not listed is its own word
_DIGITS = dict(enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven",
                          "eight", "nine"]))
CLASS_WORDS: dict[str, dict[str, str]] = {
    "av-digits": {str(d): w for d, w in _DIGITS.items()},
    "uci-digits": {str(d): w for d, w in _DIGITS.items()},
    "oxygen-icons": {"actions": "action", "apps": "application", "categories": "category",
                     "devices": "device", "mimetypes": "file type", "places": "place",
                     "status": "status"},
    "sonic-pi-samples": {"tabla": "tabla drum", "elec": "electronic sound",
                         "drum": "drum", "loop": "drum loop", "bd": "bass drum",
                         "mehackit": "sound effect", "ambi": "ambient sound",
                         "perc": "percussion", "bass": "bass", "glitch": "glitch"},
    "klettres-data": {"ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German",
                      "en": "English", "en_GB": "British English", "es": "Spanish",
                      "fr": "French", "he": "Hebrew", "hu": "Hungarian", "it": "Italian",
                      "lt": "Lithuanian", "ml": "Malayalam", "nb": "Norwegian",
                      "nds": "Low German", "nl": "Dutch", "pt_BR": "Brazilian Portuguese",
                      "ru": "Russian", "uk": "Ukrainian"},
}
CLASS_WORDS["tango-icons"] = CLASS_WORDS["oxygen-icons"]
#: sets whose pictures are in builtin:general's corpus (with their names, not these
#: labels): its heads have seen them
IN_CORPUS = {"oxygen-icons": "its pictures in the corpus",
             "tango-icons": "its pictures in the corpus",
             "tuxpaint (category)": "its train split in the corpus"}


def _bundled(quick: bool) -> list[tuple[str, pd.DataFrame, str]]:
    """(name, rows with absolute paths, column) of the bundled sets' test splits."""
    from polymodal.data.bundled import make_dataset

    out = []
    for name, dataset, limit, columns in (
            ("tuxpaint (category)", "tuxpaint", None, ("image",)),
            ("fashion-mnist", "fashion-mnist", 30, ("image",)),
            ("av-digits", "av-digits", None, ("image", "audio"))):
        manifest = make_dataset(dataset, limit=3 if quick else limit)
        table = pd.read_csv(manifest)
        table = table[table["split"] == "test"]
        for column in columns:
            rows = table[["id", column, "label"]].dropna().copy()
            rows[column] = [str(Path(manifest).parent / p) for p in rows[column]]
            out.append((name, rows, column))
    return out


def _real(quick: bool) -> list[tuple[str, pd.DataFrame, str]]:
    """(name, rows, column) of the real-data suite's sets, every row."""
    from benchmarks.real_sets import SETS, make
    from benchmarks.report import RESULTS

    out = []
    for real in SETS:  # the real-data suite's manifests (made once, shared with it)
        table = pd.read_csv(make(real, RESULTS / "real-data" / "sets", quick))
        column = "image" if "image" in table.columns else "audio"
        out.append((real.name, table[["id", column, "label"]].copy(), column))
    return out


def _column(model: Any, kind: str) -> str | None:
    """The model's column of ``kind`` ("image" or "audio"), if it has one."""
    for column in model.columns_:
        if model.roles_.get(column, {}).get("role") == kind:
            return column
    return kind if kind in model.columns_ else None


def untrained_bridge() -> Any:
    """``builtin:general``'s towers with the fixed heads (nothing trained), loaded."""
    from polymodal.library.general.build import build_model
    from polymodal.pretraining import Pretrainer

    folder = Path(tempfile.mkdtemp(prefix="bridge-alone-")) / "general-untrained"
    return Pretrainer.load(build_model(folder))


def rows(models: dict[str, Any], quick: bool, pictures_only: tuple[str, ...] = ("bridge",),
         kinds: tuple[str, ...] = ("picture", "sound")) -> list[list[str]]:
    """One row per set and column: rows, classes, chance, then each model's accuracy
    ("-" where a model has no tower for the column, and for sounds where the model is
    in ``pictures_only``: the untrained bridge is a picture tower, its sound tower
    the general model's without the trained head), and general over chance; the sets
    of ``kinds`` only."""
    out = []
    for name, table, column in _bundled(quick) + _real(quick):
        if ("picture" if column == "image" else "sound") not in kinds:
            continue
        words = CLASS_WORDS.get(name, {})
        table = table.assign(label=[words.get(str(v), str(v)) for v in table["label"]])
        scores = {}
        for key, model in models.items():
            own = None if column != "image" and key in pictures_only else \
                _column(model, column)
            scores[key] = None if own is None else model.evaluate_zero_shot(
                table.rename(columns={column: own}), own, "label")
        general = scores["general"]
        chance = 1 / table["label"].nunique()
        seen = f" ({IN_CORPUS[name]})" if name in IN_CORPUS else ""
        out.append([f"{name}{seen}", "picture" if column == "image" else "sound",
                    f"{len(table)}", f"{table['label'].nunique()}", f"{chance:.3f}",
                    *("-" if scores[k] is None else f"{scores[k]['accuracy']:.3f}"
                      for k in models),
                    f"{general['accuracy'] / chance:.1f}x"])
    return out
