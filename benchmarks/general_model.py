"""``builtin:general`` on kinds of data it was never tuned on: for each picture source
(:data:`polymodal.library.general.sources.SOURCES`), caption -> picture and picture ->
caption retrieval (R@1/5/10, median rank, gallery of up to 1,000) next to chance, the
bridge without its "nothing" axis and ``builtin:lit-tuxpaint``, in one run; speech ->
caption through Whisper; and zero-shot classification on every labelled set
(:mod:`benchmarks.general_zero_shot`). The library on a folder of mixed media is
:mod:`benchmarks.general_library`; sounds, :mod:`benchmarks.general_sounds`.

The heads measured on a source are trained in the run on every other corpus source
(leave one source out: what the shipped heads would be had that source not been in
the corpus); ``lit-tuxpaint`` was trained on
the tuxpaint train split, so its tuxpaint row is in-domain (test split), its icon rows
are not. The EfficientNet-Lite0 features of a picture are computed once and feed both
models (their image towers share them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.report import RESULTS, Section

GALLERY = 1000
QUICK_ROWS = 24
SPEECH_ROWS = 60
#: per source: the share of its captions that the left-out heads' training corpus holds
#: word for word (the icon themes share the freedesktop icon names)
OVERLAP: dict[str, float] = {}
CACHE = RESULTS / "runs" / "general-model"  # features, not results: ignored by git
#: the heads' settings, chosen in the run on training-only sources (loso.choose_settings)
SETTINGS: list[Any] = []
#: per left-out source: the distinct training pairs of its heads
TRAIN_ROWS: dict[str, int] = {}


def _text(encode: Any, captions: list[str]) -> np.ndarray:
    out = np.concatenate([encode(captions[i: i + 128]) for i in range(0, len(captions), 128)])
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)


def _metrics(images: np.ndarray, words: np.ndarray, captions: list[str]
             ) -> dict[str, dict[str, float]]:
    """Both directions; a caption shared by pictures retrieves all of them."""
    from polymodal.pretraining.retrieval import chance_metrics, co_occurrence, retrieval_metrics

    keys = [str(i) for i in range(len(images))]
    queries, gallery, relevant = co_occurrence(captions, keys)
    first = {c: i for i, c in reversed(list(enumerate(captions)))}
    c2i = retrieval_metrics(words[[first[q] for q in queries]], images, relevant)
    # picture -> caption: the gallery is the distinct captions
    g_index = {c: j for j, c in enumerate(queries)}
    i2c = retrieval_metrics(images, words[[first[q] for q in queries]],
                            [[g_index[c]] for c in captions])
    return {"caption -> picture": c2i, "picture -> caption": i2c,
            "chance caption -> picture": chance_metrics(relevant, len(gallery)),
            "chance picture -> caption": chance_metrics([[0]] * len(captions), len(queries))}


def _models(quick: bool) -> dict[str, Any]:
    from polymodal.library.builtin import builtin_model
    from polymodal.pretraining import Pretrainer

    general = Pretrainer.load(builtin_model("general", root=RESULTS / "pretrained"))
    lit = Pretrainer.load(builtin_model("lit-tuxpaint", root=RESULTS / "pretrained",
                                        quick=quick, progress=True))
    return {"general": general, "lit": lit}


def _features(quick: bool) -> dict[str, Any]:
    """Every corpus source's tower outputs (cached in :data:`CACHE`); quick: a few rows
    of each."""
    from polymodal.library.general.features import source_features
    from polymodal.library.general.loso import load_all
    from polymodal.library.general.sources import CORPUS, TUNING

    if not quick:
        return load_all(CACHE)
    return {n: source_features(s, CACHE, s.rows().head(QUICK_ROWS))
            for n, s in {**CORPUS, TUNING.name: TUNING}.items()}


def _retrieval_rows(models: dict[str, Any], features: dict[str, Any], quick: bool
                    ) -> list[list[str]]:
    """Per measured source, left out: caption -> picture on all its captions and on the
    unseen ones, picture -> caption on all; chance, the bridge alone, the heads trained
    on the others, lit-tuxpaint."""
    from polymodal.library.general.features import decoded_features
    from polymodal.library.general.heads import HeadSettings
    from polymodal.library.general.loso import (
        MEASURED,
        gallery_index,
        left_out,
        measure,
        measure_back,
    )
    from polymodal.library.general.sources import CORPUS

    settings = SETTINGS[0] if not quick else HeadSettings(epochs=1)
    lit = models["lit"]
    lit_name = "builtin:lit-tuxpaint" + (" (quick)" if quick else "")
    rows = []
    for name in MEASURED:
        res = left_out(name, features, settings)
        test = features[name]
        index = gallery_index(len(test))
        table = CORPUS[name].rows()
        table = table.head(QUICK_ROWS) if quick else table
        captions = [test.captions[i] for i in index]
        pooled = decoded_features(list(table["image"]), CACHE)[0][index]
        with torch.no_grad():
            lit_images = lit.model_.heads["image"](torch.as_tensor(pooled)).numpy()
        lit_words = _text(lambda t: lit.embed_values("caption", t), captions)
        seen = res["seen_share"]
        OVERLAP[name] = seen
        keep = {"all": None, "unseen": np.array(
            [k not in res["train_keys"] for k in test.take(index).keys])}
        n = len(index)
        for queries in ("all", "unseen"):
            lit_m, chance = measure(lit_images, lit_words, captions, keep[queries])
            if not chance:  # every caption was seen in training
                continue
            label = f"caption -> picture ({queries}: {lit_m['queries']:.0f} captions)"
            rows.append(_row(name, n, label, "chance", chance, chance))
            for m in res["results"]:
                if m.queries == queries:
                    rows.append(_row(name, n, label, m.model, m.metrics, chance))
            rows.append(_row(name, n, label, lit_name, lit_m, chance))
        back = {"bridge alone": measure_back(*res["back"]["bridge alone"], captions),
                "LiT heads on the others": measure_back(*res["back"]["LiT heads on the others"],
                                                        captions),
                lit_name: measure_back(lit_images, lit_words, captions)}
        chance = back[lit_name][1]
        rows.append(_row(name, n, "picture -> caption (all)", "chance", chance, chance))
        rows += [_row(name, n, "picture -> caption (all)", m, r[0], chance)
                 for m, r in back.items()]
        TRAIN_ROWS[name] = res["train_rows"]
    return rows


def _row(source: str, n: int, direction: str, model: str, m: dict[str, float],
         chance: dict[str, float]) -> list[str]:
    ratio = m["R@10"] / chance["R@10"] if chance["R@10"] else float("nan")
    return [source, str(n), direction, model, f"{m['R@1']:.3f}", f"{m['R@5']:.3f}",
            f"{m['R@10']:.3f}", f"{m['median_rank']:.0f}", f"{ratio:.1f}x"]


def _speech_rows(models: dict[str, Any], quick: bool) -> list[list[str]]:
    """Spoken descriptions (tuxpaint's recordings, test split) -> their captions."""
    from polymodal.data.media import decode_audio
    from polymodal.library.general.sources import tuxpaint

    table = tuxpaint("test").dropna(subset=["speech"]).drop_duplicates("speech")
    table = table.head(6 if quick else SPEECH_ROWS)
    general = models["general"]
    captions = [str(c) for c in table["caption"]]
    said = general.embed_values("speech", [decode_audio(Path(p)) for p in table["speech"]])
    res = _metrics(said, _text(lambda t: general.embed_values("caption", t), captions),
                   captions)
    chance = res["chance picture -> caption"]
    return [_row("tuxpaint speech", len(table), "speech -> caption", "chance", chance, chance),
            _row("tuxpaint speech", len(table), "speech -> caption",
                 "builtin:general (Whisper -> MiniLM)", res["picture -> caption"], chance)]


def run(quick: bool = False) -> Section:
    from polymodal.library.general.heads import HeadSettings
    from polymodal.library.general.loso import choose_settings, corpus_size

    models = _models(quick)
    features = _features(quick)
    chosen, grid = (HeadSettings(epochs=1), []) if quick else choose_settings(features)
    SETTINGS[:] = [chosen]
    pictures, names = corpus_size(features)
    rows = _retrieval_rows(models, features, quick) + _speech_rows(models, quick)
    from benchmarks.general_zero_shot import rows as zero_shot_rows
    from benchmarks.general_zero_shot import untrained_bridge

    zero = zero_shot_rows({"general": models["general"], "bridge": untrained_bridge(),
                           "lit": models["lit"]}, quick)
    notes = [f"Corpus: {pictures:,} captioned pictures from {len(features) - 1} sources "
             f"({names:,} distinct names, a name shared by sources counted once); heads: "
             f"residual linear LiT heads on the locked bridge and MiniLM (polymodal.library."
             f"general.heads), {chosen.epochs} epochs, pull {chosen.anchor}, the "
             f"{chosen.per_name} picture of each name an epoch, chosen in this "
             "run on the training-only sources breeze and numix left out of a corpus "
             "without the measured sources (unseen caption -> picture R@10):", ""]
    notes += [f"- {line}" for line in grid]
    notes += ["", "Zero-shot classification on every labelled set (benchmarks/"
              "general_zero_shot.py: the bundled sets' test splits, every row of the "
              "real-data suite's; each class named in words, in CLIP's three prompts; "
              "sounds through each model's audio tower, Whisper's transcript for "
              "builtin:general; 'bridge alone': the same picture tower with untrained heads "
              "(pictures only); 'in the corpus': builtin:general's heads were trained on "
              "these pictures with their names, not with these labels):", "",
              "| set | kind | rows | classes | chance | builtin:general | bridge alone | "
              "builtin:lit-tuxpaint | general / chance |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    notes += ["| " + " | ".join(r) + " |" for r in zero]
    notes += ["", "Sources and their data cards: docs/general-model.md. 'bridge alone' is "
              "the untrained concept bridge; 'LiT heads on the others': the heads trained "
              "in this run on every corpus source but the one measured (the tuxpaint train "
              "split among them, except for tuxpaint's own row): leave-one-source-out. "
              "'(unseen)' rows keep only the captions whose name (words, sorted, plural "
              "s dropped) no training row has: the honest number, since icon themes share "
              "the freedesktop names. Share of each source's measured captions seen in "
              "training: " + ", ".join(f"{n} {v:.0%}" for n, v in OVERLAP.items()) +
              ". builtin:lit-tuxpaint's heads were trained on the tuxpaint train split, so "
              "its tuxpaint rows are in-domain. 'x chance' is R@10 over chance's R@10."]
    return Section(key="general-model",
                   title="builtin:general: retrieval on sources it never saw, speech, "
                         "zero-shot",
                   command="python -m benchmarks --only general-model" +
                           (" --quick" if quick else ""),
                   columns=["source", "rows", "direction", "model", "R@1", "R@5", "R@10",
                            "median rank", "R@10 / chance"],
                   rows=rows, notes="\n".join(notes))
