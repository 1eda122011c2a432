"""LiT heads on the locked towers, trained here on the captioned pictures of some
sources (:mod:`.sources`) and measured on a source left out: the issue's "general
model trained from a broad corpus", as far as the corpus we have goes.

The image tower is the concept bridge (so the heads start from ImageNet's words), the
text tower MiniLM; both stay locked, only the two linear heads learn (InfoNCE, the
Pretrainer's). Not shipped: on a left-out icon theme they gain little over the bridge
alone, and they lose its "nothing" axis and its speech tower (docs/general-model.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from polymodal.encoders.bridge import CONFIDENT_AT, TEMPERATURE, TOP_K
from polymodal.library.general.sources import SOURCES, TUNING, Source

#: the heads' shared size
DIM = 256


def training_sources(left_out: str) -> list[Source]:
    """Every source but ``left_out``; tuxpaint trains on its train split (its test split
    is what it is measured on), and none of it when tuxpaint is the one left out."""
    chosen = [s for n, s in SOURCES.items() if n not in (left_out, "tuxpaint")]
    return chosen if left_out == "tuxpaint" else [TUNING, *chosen]


def corpus(sources: Sequence[Source], limit: int | None = None) -> pd.DataFrame:
    """The ``image`` / ``caption`` rows of ``sources`` (at most ``limit`` of each,
    seeded)."""
    parts = []
    for s in sources:
        rows = s.rows()
        if limit is not None and len(rows) > limit:
            rows = rows.sample(limit, random_state=0)
        parts.append(rows[["image", "caption"]])
    return pd.concat(parts, ignore_index=True)


def train_heads(rows: pd.DataFrame, *, path: str | os.PathLike[str],
                cache_dir: str | os.PathLike[str], max_epochs: int = 30, seed: int = 0
                ) -> object:
    """A fitted Pretrainer: linear heads on the locked bridge and MiniLM towers."""
    from polymodal.pretraining import Pretrainer

    bridge = {"top_k": TOP_K, "temperature": TEMPERATURE, "confident_at": CONFIDENT_AT}
    pre = Pretrainer(modalities=["image", "caption"], preset="pretrained",
                     projection="linear", dim=DIM, max_epochs=max_epochs, batch_size=128,
                     seed=seed, encoders={"image": ("imagenet-bridge", bridge),
                                          "caption": ("minilm", {})},
                     cache_dir=cache_dir, path=path, media_cache=None)
    pre.fit(rows)
    return pre
