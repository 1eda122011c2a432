"""``builtin:general`` on kinds of data it was never tuned on: for each picture source
(:data:`polymodal.library.general.sources.SOURCES`), caption -> picture and picture ->
caption retrieval (R@1/5/10, median rank, gallery of up to 1,000) next to chance, the
bridge without its "nothing" axis and ``builtin:lit-tuxpaint``, in one run; speech ->
caption through Whisper; and zero-shot classification on the bundled labelled sets.

Nothing here is trained for ``builtin:general`` (no head is fitted: the sources are all
left out of it), so each source is "left out" for it; ``lit-tuxpaint`` was trained on
the tuxpaint train split, so its tuxpaint row is in-domain (test split), its icon rows
are not. The EfficientNet-Lite0 features of a picture are computed once and feed both
models (their image towers share them)."""

from __future__ import annotations

from functools import partial
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


def _rows(source: Any, quick: bool) -> Any:
    rows = source.rows()
    n = QUICK_ROWS if quick else GALLERY
    return rows.sample(n, random_state=0) if len(rows) > n else rows


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
    from polymodal.encoders.bridge import ImageNetBridge
    from polymodal.library.builtin import builtin_model
    from polymodal.pretraining import Pretrainer

    general = Pretrainer.load(builtin_model("general", root=RESULTS / "pretrained"))
    lit = Pretrainer.load(builtin_model("lit-tuxpaint", root=RESULTS / "pretrained",
                                        quick=quick, progress=True))
    return {"general": general, "lit": lit,
            "bridge": general.model_.encoder("image"),
            "no-axis": ImageNetBridge(null_axis=False)}


def _retrieval_rows(models: dict[str, Any], quick: bool) -> list[list[str]]:
    from polymodal.library.general.sources import SOURCES
    from polymodal.library.general.tuning import bridge_vectors, pooled_features

    general, lit = models["general"], models["lit"]
    rows = []
    for name, source in SOURCES.items():
        try:
            table = _rows(source, quick)
        except FileNotFoundError as exc:  # its package is not installed: `make model`
            rows.append([name, "0", "-", f"not measured: {exc}", *["-"] * 5])
            continue
        captions = [str(c) for c in table["caption"]]
        pooled = pooled_features(list(table["image"]), CACHE)
        g_words = _text(lambda t: general.embed_values("caption", t), captions)
        with torch.no_grad():
            lit_images = lit.model_.heads["image"](torch.as_tensor(pooled)).numpy()
        bridged = bridge_vectors(pooled, models["bridge"])
        loso, seen = _left_out_heads(name, quick)
        OVERLAP[name] = sum(c in seen for c in captions) / len(captions)
        with torch.no_grad():
            loso_images = loso.model_.heads["image"](torch.as_tensor(bridged)).numpy()
        spaces = {
            "builtin:general (the bridge)": (bridged, g_words),
            "LiT heads on the other sources (trained here)": (
                loso_images, _text(partial(loso.embed_values, "caption"), captions)),
            "bridge, no 'nothing' axis": (bridge_vectors(pooled, models["no-axis"]),
                                          g_words[:, :-1]),
            "builtin:lit-tuxpaint" + (" (quick)" if quick else ""): (
                lit_images, _text(lambda t: lit.embed_values("caption", t), captions)),
        }
        results = {m: _metrics(i, w, captions) for m, (i, w) in spaces.items()}
        first = next(iter(results.values()))
        for direction in ("caption -> picture", "picture -> caption"):
            chance = first[f"chance {direction}"]
            rows.append(_row(name, len(table), direction, "chance", chance, chance))
            for model, res in results.items():
                rows.append(_row(name, len(table), direction, model, res[direction], chance))
    return rows


def _left_out_heads(left_out: str, quick: bool) -> tuple[Any, set[str]]:
    """LiT heads on the bridge and MiniLM, trained on every source but ``left_out``, and
    the captions they were trained on."""
    import shutil

    from polymodal.library.general.train import corpus, train_heads, training_sources

    rows = corpus(training_sources(left_out), limit=QUICK_ROWS if quick else None)
    run = CACHE / f"loso-{left_out}{'-quick' if quick else ''}"
    shutil.rmtree(run, ignore_errors=True)  # a fresh fit each run, never resumed
    return train_heads(rows, path=run, cache_dir=CACHE / "feature-cache",
                       max_epochs=2 if quick else 30), set(rows["caption"].astype(str))


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


def _zero_shot_rows(models: dict[str, Any], quick: bool) -> list[list[str]]:
    import pandas as pd

    from polymodal.data.bundled import make_dataset

    sets = {"tuxpaint (category)": make_dataset("tuxpaint", limit=3 if quick else None),
            "fashion-mnist": make_dataset("fashion-mnist", limit=2 if quick else 30)}
    rows = []
    for name, manifest in sets.items():
        table = pd.read_csv(manifest)
        test = table.loc[table["split"] == "test", ["id", "image", "label"]].copy()
        test["image"] = [str(Path(manifest).parent / p) for p in test["image"]]
        scores = {}
        for model in ("general", "lit"):
            scores[model] = models[model].evaluate_zero_shot(test, "image", "label")
        chance = scores["general"]["chance"]
        rows.append([name, f"{scores['general']['rows']:.0f}",
                     str(test["label"].nunique()), f"{chance:.3f}",
                     f"{scores['general']['accuracy']:.3f}", f"{scores['lit']['accuracy']:.3f}",
                     f"{scores['general']['accuracy'] / chance:.1f}x"])
    return rows


def run(quick: bool = False) -> Section:
    models = _models(quick)
    rows = _retrieval_rows(models, quick) + _speech_rows(models, quick)
    zero = _zero_shot_rows(models, quick)
    notes = ["Zero-shot classification (test split; class names in CLIP's three prompts):", "",
             "| set | rows | classes | chance | builtin:general | builtin:lit-tuxpaint | "
             "general / chance |", "|---|---:|---:|---:|---:|---:|---:|"]
    notes += ["| " + " | ".join(r) + " |" for r in zero]
    notes += ["", "Sources and their data cards: docs/general-model.md. builtin:general "
              "trains nothing on any of them (its bridge's temperature and top-k were "
              "chosen on the tuxpaint train split, which no row here comes from); "
              "builtin:lit-tuxpaint's heads were trained on the tuxpaint train split, so "
              "its tuxpaint rows are in-domain. 'LiT heads on the other sources': linear "
              "heads on the locked bridge and MiniLM, trained in this run on every other "
              "source (the tuxpaint train split among them, except for tuxpaint's own "
              "row): leave-one-source-out. Of each source's captions, the share that "
              "those heads' training corpus holds word for word (the icon themes share "
              "the freedesktop icon names, so their rows for these heads are partly "
              "memory, not generalisation): " + ", ".join(
                  f"{n} {v:.0%}" for n, v in OVERLAP.items()) + ". 'x chance' is R@10 "
              "over chance's R@10."]
    return Section(key="general-model",
                   title="builtin:general: retrieval on sources it never saw, speech, "
                         "zero-shot",
                   command="python -m benchmarks --only general-model" +
                           (" --quick" if quick else ""),
                   columns=["source", "rows", "direction", "model", "R@1", "R@5", "R@10",
                            "median rank", "R@10 / chance"],
                   rows=rows, notes="\n".join(notes))
