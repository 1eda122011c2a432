"""``builtin:general``'s clips: sound effects found by what they are, speech by what it
says, in the space of the pictures and captions.

- Leave one sound source out (:mod:`polymodal.library.general.sound_loso`): the audio
  head trained in the run on every other sound source, measured on the left-out
  source's names (sound -> caption and caption -> sound, one clip per name), by three
  paths: the transcript alone (what ``builtin:general`` did before 0.4), the sound
  alone, and both weighted by how surely the clip is speech (what it does now); next
  to chance. The settings are chosen in the run on two training-only sources.
- The tuxpaint stamps' test split, never trained on: its sound effects and spoken
  descriptions -> their captions, through the shipped model (``embed_values``), next
  to the transcript alone; and picture <-> sound between the stamps that have both (a
  picture of a cow found by its moo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.general_model import _row
from benchmarks.report import RESULTS, Section

CACHE = RESULTS / "runs" / "general-model"  # features, not results: ignored by git
#: quick runs: these sources, this many clips each
QUICK_SOURCES = ("tuxpaint-sounds", "supertux-sounds", "freedesktop-sounds", "0ad-sounds",
                 "minetest-sounds")
QUICK_ROWS = 12


def _sounds(quick: bool) -> dict[str, Any]:
    from polymodal.library.general.sound_features import sound_features
    from polymodal.library.general.sound_sources import SOUND_SOURCES

    names = QUICK_SOURCES if quick else tuple(SOUND_SOURCES)
    out = {}
    for n in names:
        table = SOUND_SOURCES[n].rows()
        out[n] = sound_features(n, table.head(QUICK_ROWS) if quick else table, CACHE)
    return out


def _loso_rows(sounds: dict[str, Any], caption_head: Any, settings: Any,
               measured: tuple[str, ...]) -> list[list[str]]:
    from polymodal.library.general.sound_loso import left_out
    from polymodal.pretraining.retrieval import chance_metrics

    rows = []
    for name in measured:
        n = len(sounds[name].distinct())
        chance = chance_metrics([[0]] * n, n)
        results = left_out(name, sounds, caption_head, settings)
        for direction in ("sound -> caption", "caption -> sound"):
            key = direction.replace(" ", "")
            rows.append(_row(name, n, direction, "chance", chance, chance))
            for path, m in results.items():
                rows.append(_row(name, n, direction, path,
                                 {k.split(" ", 1)[1]: v for k, v in m.items()
                                  if k.startswith(key)}, chance))
    return rows


def _stamp_rows(quick: bool) -> list[list[str]]:
    """The tuxpaint test split through the shipped model, next to the transcript
    alone: effects and spoken descriptions -> captions; picture <-> sound."""
    from polymodal.data.media import decode_audio, decode_image
    from polymodal.library.general.build import MODEL_FOLDER, read_heads
    from polymodal.library.general.mixed import _sounds as stamp_sounds
    from polymodal.library.general.sound_features import sound_features
    from polymodal.library.general.sound_head import caption_places
    from polymodal.library.general.sources import tuxpaint
    from polymodal.pretraining import Pretrainer
    from polymodal.pretraining.retrieval import chance_metrics, retrieval_metrics

    general = Pretrainer.load(MODEL_FOLDER)
    heads = read_heads(MODEL_FOLDER)
    stamps = tuxpaint("test")
    stamps = stamps.assign(sound=stamp_sounds(stamps))
    rows = []
    for column, label in (("sound", "tuxpaint test sound effects"),
                          ("speech", "tuxpaint test spoken descriptions")):
        table = stamps.dropna(subset=[column]).drop_duplicates(column)
        table = table.head(6 if quick else len(table)).reset_index(drop=True)
        captions = [str(c) for c in table["caption"]]
        names = general.embed_values("caption", captions)
        clips = [decode_audio(Path(p)) for p in table[column]]
        shipped = general.embed_values("speech", clips)
        clips_table = pd.DataFrame({"sound": table[column], "caption": captions})
        before = caption_places(heads["caption"],
                                sound_features(column, clips_table, CACHE).said)
        relevant = [[i] for i in range(len(table))]
        chance = chance_metrics(relevant, len(table))
        rows.append(_row(label, len(table), "clip -> caption", "chance", chance, chance))
        paths = (("transcript alone (before)", before),
                 ("builtin:general (both, by speech)", shipped))
        for path, places in paths:
            rows.append(_row(label, len(table), "clip -> caption", path,
                             retrieval_metrics(places, names, relevant), chance))
        if column == "sound":  # a picture of a cow and its moo
            pictures = general.embed_values("image", [decode_image(Path(p))
                                                      for p in table["image"]])
            for path, places in paths:
                rows.append(_row(label, len(table), "picture -> sound", path,
                                 retrieval_metrics(pictures, places, relevant), chance))
                rows.append(_row(label, len(table), "sound -> picture", path,
                                 retrieval_metrics(places, pictures, relevant), chance))
    return rows


def _zero_shot_rows(quick: bool) -> list[list[str]]:
    """Zero-shot classification of every labelled set of sounds
    (:mod:`benchmarks.general_zero_shot`) by the shipped model and by the same model
    with the transcript alone (its clip tower ``speech-text``, its clip head the
    caption head: builtin:general before 0.4)."""
    import tempfile

    from benchmarks.general_zero_shot import rows
    from polymodal.library.general.build import (
        ENCODERS,
        MODEL_FOLDER,
        TRAINED_ENCODERS,
        build_model,
        read_heads,
    )
    from polymodal.pretraining import Pretrainer

    heads = read_heads(MODEL_FOLDER)
    before = build_model(Path(tempfile.mkdtemp(prefix="transcript-alone-")) / "general",
                         trained={**heads, "speech": heads["caption"]},
                         encoders={**TRAINED_ENCODERS, "speech": ENCODERS["speech"]})
    return rows({"general": Pretrainer.load(MODEL_FOLDER),
                 "transcript": Pretrainer.load(before)}, quick, kinds=("sound",))


def run(quick: bool = False) -> Section:
    import torch

    from polymodal.library.general.build import MODEL_FOLDER, read_heads
    from polymodal.library.general.sound_head import SoundHeadSettings
    from polymodal.library.general.sound_loso import MEASURED, VALIDATION, choose_sound_settings

    torch.set_num_threads(1)  # the same sums whatever the cores
    sounds = _sounds(quick)
    caption_head = read_heads(MODEL_FOLDER)["caption"]
    chosen, grid = (SoundHeadSettings(steps=30), []) if quick else \
        choose_sound_settings(sounds, caption_head)
    measured = tuple(n for n in MEASURED if n in sounds)
    rows = _loso_rows(sounds, caption_head, chosen, measured) + _stamp_rows(quick)
    zero = _zero_shot_rows(quick)
    clips = sum(len(f) for f in sounds.values())
    notes = [f"Sound corpus: {clips:,} named clips of {len(sounds)} sources (data cards: "
             "docs/general-model.md). Audio head: a linear map of Whisper's pooled encoder "
             "states (mean and standard deviation, standardised) beside the locked caption "
             f"head on the transcript, weighted by how surely the clip is speech; "
             f"{chosen.pooling}, L2 {chosen.decay:g}, {chosen.steps} full-batch steps, "
             f"chosen in this run on the training-only sources {', '.join(VALIDATION)} "
             "(each left out; sound -> caption R@10, both paths by speech):", ""]
    notes += [f"- {line}" for line in grid]
    notes += ["", "'transcript alone': Whisper's words through the caption head, what "
              "builtin:general did with every clip before 0.4 (a clip with no words is "
              "embedded as '.'); 'sound alone': the trained map of the sound with the speech "
              "weight forced to 0; 'both (by speech)': the shipped path. Leave-one-source-out "
              "rows: the head trained in this run on every other sound source; one clip per "
              "name, the gallery is the source's names (or clips). The tuxpaint test split's "
              "clips (the mixed folder's) are never trained on; their rows run the shipped "
              "model folder end to end. 'x chance' is R@10 over chance's R@10.", "",
              "Zero-shot classification of every labelled set of sounds (benchmarks/"
              "general_zero_shot.py: each class named in words, no labels used; the "
              "real-data suite's sets are evaluation data, never trained on), the shipped "
              "model against the same model with the transcript alone:", "",
              "| set | kind | rows | classes | chance | builtin:general | transcript alone "
              "| general / chance |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    notes += ["| " + " | ".join(r) + " |" for r in zero]
    return Section(key="general-sounds",
                   title="builtin:general: sound effects by what they are, speech by what "
                         "it says",
                   command="python -m benchmarks --only general-sounds" +
                           (" --quick" if quick else ""),
                   columns=["source", "names", "direction", "path", "R@1", "R@5", "R@10",
                            "median rank", "R@10 / chance"],
                   rows=rows, notes="\n".join(notes))
