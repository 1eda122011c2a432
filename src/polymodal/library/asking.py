"""Asking a library: loading the models an answer may come from (a VQA Predictor, a
text-generation pipeline) and choosing how a question is answered: by the VQA model
about the best-matching picture, by the generator from the retrieved evidence, or
composed from that evidence directly. :meth:`Library.ask
<polymodal.library.library.Library.ask>` is the public face."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from polymodal.library.results import Answer

if TYPE_CHECKING:
    from polymodal.library.library import Library


def load_vqa(predictor: str | os.PathLike[str]) -> Any:
    """The saved Predictor at ``predictor``, refused unless it takes one picture column
    and one text column (the question)."""
    from polymodal.predictor import Predictor

    p = Predictor.load(predictor)
    roles = [p.roles_[c]["role"] for c in p.columns_]
    if sorted(roles) != ["image", "text"]:
        raise ValueError(f"{predictor}: a VQA model takes a picture and a question; "
                         f"this one takes {dict(zip(p.columns_, roles, strict=True))}")
    return p


def text_generation(model: str) -> Any:
    """A transformers text-generation pipeline on the CPU (or the first GPU)."""
    import torch
    from transformers import pipeline

    try:
        return pipeline("text-generation", model=model,
                        device=0 if torch.cuda.is_available() else -1)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load the text-generation model {model!r}: {exc}") from None


def load_writer(writer: Any) -> Any:
    """A :class:`~polymodal.generate.Captioner`, or the saved one at ``writer``."""
    from polymodal.generate import Captioner

    return writer if isinstance(writer, Captioner) else Captioner.load(writer)


def written_answer(lib: Any, question: str, k: int, writer: Any) -> Answer:
    """The captioner's words about the picture that best matches ``question``
    (``method="captioner"``), naming that item and the other evidence. The question
    chooses the picture; a captioner trained with questions (``Captioner(question=
    COLUMN)``) also reads it before writing, one trained without describes the
    picture."""
    captioner = load_writer(writer)
    evidence = [h for h in lib.search(question, k, modality="image") if h.path]
    if not evidence:
        return Answer(question, "No picture in the library matches this question.", [],
                      "captioner")
    best = evidence[0]
    asked = question if getattr(captioner, "question", None) is not None else None
    row = captioner.caption([best.path], question=asked).iloc[0]
    if row["problem"] or not row["caption"]:
        text = f"The captioner wrote nothing about item {best.item} ({row['problem']})."
    else:
        given = "given the question, " if asked is not None else ""
        text = (f"{row['caption']} (written by the captioner about item {best.item}, "
                f"{given}the picture closest to the question, similarity "
                f"{best.score:.2f}; evidence: "
                f"{', '.join(h.item for h in evidence)})")
    return Answer(question, text, evidence, "captioner")


def ask(lib: Library, question: str, k: int = 5, writer: Any = None) -> Answer:
    """``lib``'s answer to ``question`` and the items it rests on (see
    :meth:`Library.ask <polymodal.library.library.Library.ask>`); with ``writer`` (a
    Captioner or its folder), the answer it writes about the best picture."""
    if writer is not None:
        return written_answer(lib, question, k, writer)
    from polymodal.library.answer import (
        close_score,
        compose_answer,
        generate_answer,
        nothing_close,
    )

    vqa = lib.vqa
    if vqa is None:
        evidence = lib.search(question, k)
        close = close_score(lib.config["model"])
        if lib.generator is not None and evidence:
            return Answer(question, generate_answer(question, evidence, lib.generator),
                          evidence, "generation", nothing_close(evidence, close))
        return Answer(question, compose_answer(question, evidence, close=close), evidence,
                      "retrieval", nothing_close(evidence, close))
    import pandas as pd

    evidence = [h for h in lib.search(question, k, modality="image") if h.path]
    if not evidence:
        return Answer(question, "No picture in the library matches this question.",
                      [], "vqa")
    image_col = next(c for c in vqa.columns_ if vqa.roles_[c]["role"] == "image")
    text_col = next(c for c in vqa.columns_ if vqa.roles_[c]["role"] == "text")
    best = evidence[0]
    proba = vqa.predict_proba(pd.DataFrame([{image_col: best.path,
                                             text_col: question}])).iloc[0]
    answer = str(proba.idxmax())
    return Answer(question, f"{answer} (about item {best.item}, confidence "
                            f"{float(proba.max()):.2f})", evidence, "vqa")
