"""Answers composed from retrieved items: no generative model needed. The answer says
what the best-matching items are (their captions), what their metadata agree on (a
category most of them share), and which items it rests on."""

from __future__ import annotations

from collections import Counter
from typing import Any


def compose_answer(question: str, evidence: list[Any], min_score: float = 0.0) -> str:
    """A short answer from the hits of ``question``, best first.

    ``evidence`` items have ``item``, ``score``, ``text`` and ``metadata``; hits at or
    below ``min_score`` do not count as support."""
    support = [h for h in evidence if h.score > min_score]
    if not support:
        return "Nothing in the library matches this question."
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
