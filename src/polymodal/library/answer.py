"""Answers composed from retrieved items: no generative model needed. The answer says
what the best-matching items are (their captions), what their metadata agree on (a
category most of them share), and which items it rests on."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

#: beside a model's weights: from which similarity on its hits are close
CALIBRATION = "calibration.yaml"


def close_score(model_folder: str | os.PathLike[str]) -> float | None:
    """The similarity from which a hit of the model in ``model_folder`` is close (its
    ``calibration.yaml``: ``close_score``), or None where the model does not say."""
    path = Path(model_folder) / CALIBRATION
    if not path.is_file():
        return None
    value = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("close_score")
    return float(value) if isinstance(value, int | float) else None


def nothing_close(evidence: list[Any], close: float | None) -> bool:
    """Whether no hit reaches ``close`` (False where the model gives no such score)."""
    return close is not None and not any(h.score >= close for h in evidence)


def compose_answer(question: str, evidence: list[Any], min_score: float = 0.0,
                   close: float | None = None) -> str:
    """A short answer from the hits of ``question``, best first.

    ``evidence`` items have ``item``, ``score``, ``text`` and ``metadata``; hits at or
    below ``min_score`` do not count as support. Where the model says from which score a
    hit is ``close`` (:func:`close_score`) and none is, the answer says so first."""
    support = [h for h in evidence if h.score > min_score]
    if not support:
        return "Nothing in the library matches this question."
    if nothing_close(support, close):
        best = support[0]
        return (f"Nothing in the library is close to this question: the nearest, "
                f"{best.text or best.item} (item {best.item}), has similarity "
                f"{best.score:.2f}, under the {close:.2f} from which this library's model "
                "calls a match close.")
    best = support[0]
    described = best.text or best.item
    parts = [f"Best match: {described} (item {best.item}, similarity {best.score:.2f})."]
    others = [h.text or h.item for h in support[1:3] if (h.text or h.item) != described]
    if others:
        parts.append("Also close: " + "; ".join(others) + ".")
    for key in _shared_keys(support):
        values = Counter(str(h.metadata[key]) for h in support
                         if h.metadata.get(key) not in (None, ""))
        if not values:  # the key is empty in every hit: nothing is shared
            continue
        value, n = values.most_common(1)[0]
        if n >= 2 and n * 2 > len(support):
            parts.append(f"{n} of the top {len(support)} items have {key} '{value}'.")
    parts.append("Evidence: " + ", ".join(h.item for h in support) + ".")
    return " ".join(parts)


def _shared_keys(hits: list[Any]) -> list[str]:
    keys: list[str] = []
    for h in hits:
        for k in h.metadata:
            if k not in keys:
                keys.append(k)
    return keys


def generation_prompt(question: str, evidence: list[Any]) -> str:
    """The prompt a text-generation model answers from: the evidence, then the
    question."""
    lines = ["Answer the question from these items of the library."]
    for i, h in enumerate(evidence, 1):
        meta = ", ".join(f"{k}: {v}" for k, v in h.metadata.items() if v not in (None, ""))
        lines.append(f"{i}. {h.text or h.item}" + (f" ({meta})" if meta else ""))
    lines += [f"Question: {question}", "Answer:"]
    return "\n".join(lines)


def generate_answer(question: str, evidence: list[Any], generator: Any,
                    max_new_tokens: int = 64) -> str:
    """A text-generation pipeline's answer from the evidence, with the items named."""
    out = generator(generation_prompt(question, evidence), max_new_tokens=max_new_tokens,
                    do_sample=False, return_full_text=False)
    text = out[0]["generated_text"].strip()
    return f"{text} (from items: {', '.join(h.item for h in evidence)})"
